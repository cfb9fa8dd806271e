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
  const currency = [...raw.revenueCurrency].sort((a, b) => b.n - a.n || String(a._id).localeCompare(String(b._id)))[0]?._id ?? 'EUR';
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
  let total = 0;
  for (const g of raw.apptByStatusBucket) {
    const status = String(g._id?.s ?? 'unknown');
    byStatus[status] = (byStatus[status] ?? 0) + g.n;
    total += g.n;
    if (typeof g._id?.q === 'number') {
      const { day, hour } = at(g._id.q);
      if (day in daily) daily[day]! += g.n;
      peakHours[String(hour)]! += g.n;
    }
  }
  const sortedStatus = Object.fromEntries(Object.entries(byStatus).sort(([a], [b]) => a.localeCompare(b)));
  const specialties = raw.specialties.filter((s) => s._id !== null && s._id !== undefined)
    .map((s) => ({ name: String(s._id), appointments: s.n }))
    .sort((a, b) => b.appointments - a.appointments || a.name.localeCompare(b.name)).slice(0, 10);
  const consultCount = first(raw.consultCount);

  const revDaily: Record<string, number> = Object.fromEntries(p.days.map((d) => [d, 0]));
  let revenue = 0;
  for (const g of raw.revenueByBucket) {
    revenue += g.n;
    if (typeof g._id === 'number') {
      const { day } = at(g._id);
      if (day in revDaily) revDaily[day]! += g.n;
    }
  }
  const names = new Map(raw.orgNames.map((o) => [String(o._id?.id), o._id?.name as string | undefined]));
  const paid = first(raw.paidAppointments);

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
  const activePatients = first(raw.activePatients);

  return {
    period: { start: p.start, end: p.end, timezone: p.timezone, ...(org ? { organization: `Organization/${org}` } : {}) },
    overview: {
      patients: first(raw.patients), verifiedPractitioners: first(raw.practitioners), activeOrganizations: first(raw.organizations),
      appointments: total, revenue: money(revenue), activePatients,
      growth: { appointments: growth(total, first(raw.apptPrevCount)), revenue: growth(revenue / 100, first(raw.revenuePrev) / 100), activePatients: growth(activePatients, first(raw.activePatientsPrev)) },
    },
    appointments: {
      total, byStatus: sortedStatus, daily, completionRate: pct(byStatus.fulfilled ?? 0, total), noShowRate: pct(byStatus.noshow ?? 0, total),
      specialties, peakHours,
      ...(consultCount ? { averageConsultationMinutes: round2(first(raw.consultSum) / consultCount) } : {}),
    },
    revenue: {
      total: money(revenue),
      daily: Object.fromEntries(Object.entries(revDaily).map(([d, n]) => [d, money(n)])),
      bySpecialty: raw.revenueBySpecialty.map((s) => ({ name: s._id === null || s._id === undefined ? 'unknown' : String(s._id), amount: money(s.n) })).sort(byAmountThenName((x) => x.name)),
      byOrganization: raw.revenueByOrg.filter((o) => o._id !== null && o._id !== undefined)
        .map((o) => ({ organization: `Organization/${o._id}`, ...(names.get(String(o._id)) ? { name: names.get(String(o._id)) } : {}), amount: money(o.n) })).sort(byAmountThenName((x) => x.organization)),
      byPaymentMethod: raw.revenueByMethod.map((m) => ({ method: String(m._id ?? 'unknown'), amount: money(m.n) })).sort(byAmountThenName((x) => x.method)),
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
