import { BUCKET_MS } from './facts.js';
import { localDayHour, type Period } from './period.js';
import type { RawResults } from './pipelines.js';

/** The figures of one scope and period, as plain values (parameters.ts turns them into a FHIR Parameters). */
export interface Figures {
  period: { start: string; end: string; timezone: string; organization?: string };
  overview: {
    patients: number; verifiedPractitioners: number; activeOrganizations: number; appointments: number;
    revenue: Money; activePatients: number;
    growth: { appointments: Growth; revenue: Growth; activePatients: Growth };
  };
  appointments: {
    total: number;
    byStatus: Record<string, number>;
    daily: Record<string, number>;
    completionRate: number; noShowRate: number;
    specialties: { name: string; appointments: number }[];
    peakHours: Record<string, number>;
    averageConsultationMinutes?: number;
  };
  revenue: {
    total: Money;
    daily: Record<string, Money>;
    bySpecialty: { name: string; amount: Money }[];
    byOrganization: { organization: string; name?: string; amount: Money }[];
    byPaymentMethod: { method: string; amount: Money }[];
    paidAppointments: number;
    averagePerPaidAppointment?: Money;
  };
  practitioners: {
    slotUtilisation: { booked: number; available: number; rate?: number };
    roles: { role: string; booked: number; available: number; rate?: number }[];
    ratings: { practitioner: string; average: number; reviews: number }[];
  };
}

export interface Money {
  value: number;
  currency: string;
}
export interface Growth {
  previous: number;
  changePercent?: number;
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const pct = (a: number, b: number) => (b ? round2((a / b) * 100) : 0);
const first = (r: { n: number }[]) => r[0]?.n ?? 0;
const growth = (cur: number, prev: number): Growth => (prev ? { previous: prev, changePercent: round2(((cur - prev) / prev) * 100) } : { previous: prev });
const byAmountThenName = <T extends { amount: Money }>(key: (t: T) => string) => (a: T, b: T) => b.amount.value - a.amount.value || key(a).localeCompare(key(b));

/** Builds the figures from the pipelines' answers (zero-filled days and hours, rates, averages, rankings). */
export function assemble(raw: RawResults, p: Period, org: string | undefined): Figures {
  const currencies = new Map<string, number>();
  for (const g of raw.pay) if (g._id?.c) currencies.set(g._id.c, (currencies.get(g._id.c) ?? 0) + 1);
  const currency = [...currencies.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0] ?? 'EUR';
  const money = (minor: number): Money => ({ value: minor / 100, currency });
  const local = new Map<number, { day: string; hour: number }>();
  const at = (qb: number) => {
    let x = local.get(qb);
    if (!x) local.set(qb, (x = localDayHour(p.timezone, qb * BUCKET_MS)));
    return x;
  };

  const byStatus: Record<string, number> = {};
  const daily: Record<string, number> = Object.fromEntries(p.days.map((d) => [d, 0]));
  const peakHours: Record<string, number> = Object.fromEntries(Array.from({ length: 24 }, (_, h) => [String(h), 0]));
  const bySpecialty = new Map<string, number>();
  let total = 0;
  let consultSum = 0;
  let consultCount = 0;
  for (const g of raw.appt) {
    if (typeof g._id?.c === 'number') {
      consultSum += g._id.c * g.n;
      consultCount += g.n;
    }
    const status = String(g._id?.s ?? 'unknown');
    byStatus[status] = (byStatus[status] ?? 0) + g.n;
    total += g.n;
    if (g._id?.sp !== undefined && g._id?.sp !== null) bySpecialty.set(String(g._id.sp), (bySpecialty.get(String(g._id.sp)) ?? 0) + g.n);
    if (typeof g._id?.q === 'number') {
      const { day, hour } = at(g._id.q);
      if (day in daily) daily[day]! += g.n;
      peakHours[String(hour)]! += g.n;
    }
  }
  const sortedStatus = Object.fromEntries(Object.entries(byStatus).sort(([a], [b]) => a.localeCompare(b)));
  const specialties = [...bySpecialty.entries()].map(([name, n]) => ({ name, appointments: n }))
    .sort((a, b) => b.appointments - a.appointments || a.name.localeCompare(b.name)).slice(0, 10);

  const revDaily: Record<string, number> = Object.fromEntries(p.days.map((d) => [d, 0]));
  const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n);
  const revSpecialty = new Map<string, number>();
  const revOrg = new Map<string, number>();
  const revMethod = new Map<string, number>();
  let revenue = 0;
  for (const g of raw.pay) {
    revenue += g.n;
    add(revSpecialty, g._id?.sp === undefined || g._id?.sp === null ? 'unknown' : String(g._id.sp), g.n);
    if (g._id?.o !== undefined && g._id?.o !== null) add(revOrg, String(g._id.o), g.n);
    add(revMethod, String(g._id?.m ?? 'unknown'), g.n);
    if (typeof g._id?.q === 'number') {
      const { day } = at(g._id.q);
      if (day in revDaily) revDaily[day]! += g.n;
    }
  }
  const names = new Map(raw.orgNames.map((o) => [String(o._id?.id), o._id?.name as string | undefined]));
  const paid = raw.payAppointments.length;

  const roles = new Map<string, { booked: number; available: number }>();
  for (const g of raw.slots) {
    const role = String(g._id?.r ?? 'unknown');
    const r = roles.get(role) ?? { booked: 0, available: 0 };
    r.available += g.n;
    if (g._id?.s === 'busy') r.booked += g.n;
    roles.set(role, r);
  }
  const booked = [...roles.values()].reduce((a, r) => a + r.booked, 0);
  const available = [...roles.values()].reduce((a, r) => a + r.available, 0);
  const counts = new Map(raw.ratingCount.map((r) => [String(r._id), r.n]));
  const ratings = raw.ratingSum.filter((r) => counts.get(String(r._id)))
    .map((r) => ({ practitioner: `Practitioner/${r._id}`, average: round2(r.n / counts.get(String(r._id))!), reviews: counts.get(String(r._id))! }))
    .sort((a, b) => b.average - a.average || b.reviews - a.reviews || a.practitioner.localeCompare(b.practitioner));
  const activePatients = raw.apptPatients.length;

  return {
    period: { start: p.start, end: p.end, timezone: p.timezone, ...(org ? { organization: `Organization/${org}` } : {}) },
    overview: {
      patients: first(raw.patients), verifiedPractitioners: first(raw.practitioners), activeOrganizations: first(raw.organizations),
      appointments: total, revenue: money(revenue), activePatients,
      growth: { appointments: growth(total, raw.apptPrevPatients.reduce((a, g) => a + g.n, 0)), revenue: growth(revenue / 100, first(raw.payPrev) / 100), activePatients: growth(activePatients, raw.apptPrevPatients.filter((g) => g._id !== null && g._id !== undefined).length) },
    },
    appointments: {
      total, byStatus: sortedStatus, daily, completionRate: pct(byStatus.fulfilled ?? 0, total), noShowRate: pct(byStatus.noshow ?? 0, total),
      specialties, peakHours,
      ...(consultCount ? { averageConsultationMinutes: round2(consultSum / consultCount) } : {}),
    },
    revenue: {
      total: money(revenue),
      daily: Object.fromEntries(Object.entries(revDaily).map(([d, n]) => [d, money(n)])),
      bySpecialty: [...revSpecialty.entries()].map(([name, n]) => ({ name, amount: money(n) })).sort(byAmountThenName((x) => x.name)),
      byOrganization: [...revOrg.entries()].map(([o, n]) => ({ organization: `Organization/${o}`, ...(names.get(o) ? { name: names.get(o) } : {}), amount: money(n) })).sort(byAmountThenName((x) => x.organization)),
      byPaymentMethod: [...revMethod.entries()].map(([method, n]) => ({ method, amount: money(n) })).sort(byAmountThenName((x) => x.method)),
      paidAppointments: paid,
      ...(paid ? { averagePerPaidAppointment: money(Math.round(revenue / paid)) } : {}),
    },
    practitioners: {
      slotUtilisation: { booked, available, ...(available ? { rate: pct(booked, available) } : {}) },
      roles: [...roles.entries()].map(([role, r]) => ({ role: `PractitionerRole/${role}`, ...r, ...(r.available ? { rate: pct(r.booked, r.available) } : {}) }))
        .sort((a, b) => a.role.localeCompare(b.role)),
      ratings,
    },
  };
}
