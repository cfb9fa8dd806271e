/**
 * Seeded data for the analytics tests (FHIR API only; Invoices and PaymentReconciliations shaped as
 * CONTRACT.md says billing writes them) and a brute-force recomputation of every figure from the resources
 * read back through search, written independently of src/analytics (local days by Intl, no buckets, no pipelines).
 */
import { http } from './server.js';

const EXT = 'https://medivoy.example/fhir/StructureDefinition';
const TZ_URL = 'http://hl7.org/fhir/StructureDefinition/timezone';
export const REVIEW_Q = 'http://medivoy.example/fhir/Questionnaire/practitioner-review';

/** Deterministic pseudo-random numbers (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function transaction(base: string, entries: { fullUrl: string; resource: any }[]): Promise<Map<string, string>> {
  const res = await http('POST', base, {
    body: { resourceType: 'Bundle', type: 'transaction', entry: entries.map((e) => ({ fullUrl: e.fullUrl, resource: e.resource, request: { method: 'POST', url: e.resource.resourceType } })) },
  });
  if (res.status !== 200) throw new Error(`transaction failed: ${res.status} ${res.text.slice(0, 800)}`);
  const ids = new Map<string, string>();
  res.body.entry.forEach((e: any, i: number) => ids.set(entries[i]!.fullUrl, e.response.location.split('/_history')[0].split('/').slice(-2).join('/')));
  return ids;
}

export interface Seeded {
  orgA: string;
  orgB: string;
  orgC: string;
  roles: string[];
  patients: string[];
}

const STATUSES = ['booked', 'fulfilled', 'fulfilled', 'cancelled', 'noshow', 'pending', 'arrived', 'proposed', 'entered-in-error'];
const METHODS = ['card', 'card', 'cash', 'sepa_debit'];

/**
 * Three organizations (Berlin, New York, an inactive one in Tokyo), practitioners and roles (one pending),
 * patients, and appointments, encounters, invoices, payments and refunds, slots and reviews spread over
 * 2027-03-20 … 2027-04-05 (both DST changes of Europe on 28 March and the US on 14 March are near),
 * with many at hours close to local midnight.
 */
export async function seed(base: string, seedNo = 7): Promise<Seeded> {
  const r = rng(seedNo);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const orgs = await transaction(base, [
    { fullUrl: 'urn:uuid:oa', resource: { resourceType: 'Organization', name: 'Alpha Klinik', active: true, extension: [{ url: TZ_URL, valueCode: 'Europe/Berlin' }] } },
    { fullUrl: 'urn:uuid:ob', resource: { resourceType: 'Organization', name: 'Beta Health', active: true, extension: [{ url: TZ_URL, valueCode: 'America/New_York' }] } },
    { fullUrl: 'urn:uuid:oc', resource: { resourceType: 'Organization', name: 'Gamma (closed)', active: false, extension: [{ url: TZ_URL, valueCode: 'Asia/Tokyo' }] } },
  ]);
  const [orgA, orgB, orgC] = ['urn:uuid:oa', 'urn:uuid:ob', 'urn:uuid:oc'].map((u) => orgs.get(u)!.split('/')[1]!) as [string, string, string];
  const spec = (code: string, display: string) => [{ coding: [{ system: 'http://snomed.info/sct', code, display }] }];
  const people: { fullUrl: string; resource: any }[] = [];
  for (let i = 0; i < 4; i++) people.push({ fullUrl: `urn:uuid:pr${i}`, resource: { resourceType: 'Practitioner', name: [{ family: `Doc${i}` }] } });
  for (let i = 0; i < 8; i++) people.push({ fullUrl: `urn:uuid:pa${i}`, resource: { resourceType: 'Patient', name: [{ family: `Pat${i}` }] } });
  const roleDefs = [
    { pr: 0, org: orgA, specialty: spec('394579002', 'Cardiology'), pending: false },
    { pr: 1, org: orgA, specialty: spec('394582007', 'Dermatology'), pending: false },
    { pr: 2, org: orgB, specialty: spec('394579002', 'Cardiology'), pending: false },
    { pr: 3, org: orgA, specialty: spec('394537008', 'Paediatrics'), pending: true },
    { pr: 2, org: orgC, specialty: spec('394582007', 'Dermatology'), pending: false },
  ];
  roleDefs.forEach((d, i) => people.push({
    fullUrl: `urn:uuid:ro${i}`,
    resource: {
      resourceType: 'PractitionerRole', active: true, practitioner: { reference: `urn:uuid:pr${d.pr}` }, organization: { reference: `Organization/${d.org}` }, specialty: d.specialty,
      ...(d.pending ? { extension: [{ url: 'http://medivoy.example/fhir/StructureDefinition/verification-status', valueCode: 'pending' }] } : {}),
    },
  }));
  roleDefs.forEach((_d, i) => people.push({ fullUrl: `urn:uuid:sc${i}`, resource: { resourceType: 'Schedule', active: true, actor: [{ reference: `urn:uuid:ro${i}` }] } }));
  const ids = await transaction(base, people);
  const roles = roleDefs.map((_d, i) => ids.get(`urn:uuid:ro${i}`)!);
  const patients = Array.from({ length: 8 }, (_, i) => ids.get(`urn:uuid:pa${i}`)!);
  const practitioners = Array.from({ length: 4 }, (_, i) => ids.get(`urn:uuid:pr${i}`)!);

  const day0 = Date.UTC(2027, 2, 20);
  const entries: { fullUrl: string; resource: any }[] = [];
  for (let i = 0; i < 70; i++) {
    const ri = pick([0, 0, 1, 1, 2, 2, 3, 4]);
    // Near local midnight half the time: 21:00-03:00 UTC covers midnight in Berlin (UTC+1/+2) and the day edges in UTC.
    const hour = r() < 0.5 ? pick([21, 22, 23, 0, 1, 2]) : Math.floor(r() * 24);
    const start = day0 + Math.floor(r() * 17) * 86_400_000 + hour * 3_600_000 + pick([0, 15, 30, 45]) * 60_000;
    const status = pick(STATUSES);
    const pat = pick(patients);
    const own = r() < 0.15 ? { specialty: spec('394802001', 'General medicine') } : {};
    entries.push({
      fullUrl: `urn:uuid:ap${i}`,
      resource: {
        resourceType: 'Appointment', status, start: new Date(start).toISOString(), end: new Date(start + 30 * 60_000).toISOString(), ...own,
        participant: [{ actor: { reference: pat }, status: 'accepted' }, { actor: { reference: roles[ri] }, status: 'accepted' }],
      },
    });
    if (status === 'fulfilled' && r() < 0.8) {
      entries.push({ fullUrl: `urn:uuid:en${i}`, resource: { resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: pat }, appointment: [{ reference: `urn:uuid:ap${i}` }], period: { start: new Date(start).toISOString(), end: new Date(start + (10 + Math.floor(r() * 40)) * 60_000).toISOString() } } });
    }
    if (['fulfilled', 'booked', 'arrived', 'noshow'].includes(status) && r() < 0.75) {
      const minor = 2500 + Math.floor(r() * 200) * 50;
      const paidAt = start + Math.floor(r() * 4 * 3_600_000) - 2 * 3_600_000;
      const method = pick(METHODS);
      const org = roleDefs[ri]!.org;
      entries.push({
        fullUrl: `urn:uuid:in${i}`,
        resource: {
          resourceType: 'Invoice', status: 'balanced', identifier: [{ system: 'https://medivoy.example/fhir/invoice-number', value: `INV-202703-${String(i).padStart(4, '0')}` }],
          subject: { reference: pat }, issuer: { reference: `Organization/${org}` }, participant: [{ actor: { reference: roles[ri] } }], date: new Date(start - 86_400_000).toISOString(),
          totalNet: { value: minor / 100, currency: 'EUR' }, totalGross: { value: minor / 100, currency: 'EUR' },
          extension: [{ url: `${EXT}/invoice-appointment`, valueReference: { reference: `urn:uuid:ap${i}` } }, { url: `${EXT}/invoice-payment-method`, valueCode: method }, { url: `${EXT}/amount-minor-units`, valueInteger: minor }],
        },
      });
      const pr = (suffix: string, amount: number, at: number) => entries.push({
        fullUrl: `urn:uuid:pr${suffix}${i}`,
        resource: {
          resourceType: 'PaymentReconciliation', status: 'active', outcome: 'complete', created: new Date(at).toISOString(), paymentDate: new Date(at).toISOString().slice(0, 10),
          paymentAmount: { value: amount / 100, currency: 'EUR', extension: [{ url: `${EXT}/amount-minor-units`, valueInteger: amount }] },
          paymentIdentifier: { value: `pi_${suffix}${i}` }, detail: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/payment-type', code: amount < 0 ? 'adjustment' : 'payment' }] }, request: { reference: `urn:uuid:in${i}` } }],
          extension: [{ url: `${EXT}/invoice-payment-method`, valueCode: method }],
        },
      });
      pr('p', minor, paidAt);
      if (r() < 0.15) pr('r', -Math.floor(minor / 2), paidAt + 3 * 86_400_000);
    }
  }
  // Slots of every role, busy or free, and reviews of the practitioners.
  for (let i = 0; i < 60; i++) {
    const ri = i % roleDefs.length;
    const start = day0 + Math.floor(r() * 17) * 86_400_000 + Math.floor(r() * 24) * 3_600_000;
    entries.push({ fullUrl: `urn:uuid:sl${i}`, resource: { resourceType: 'Slot', schedule: { reference: ids.get(`urn:uuid:sc${ri}`) }, status: pick(['busy', 'free', 'free', 'busy-unavailable']), start: new Date(start).toISOString(), end: new Date(start + 30 * 60_000).toISOString() } });
  }
  for (let i = 0; i < 20; i++) {
    const at = day0 + Math.floor(r() * 17 * 24) * 3_600_000;
    entries.push({ fullUrl: `urn:uuid:qr${i}`, resource: { resourceType: 'QuestionnaireResponse', questionnaire: REVIEW_Q, status: 'completed', subject: { reference: pick(practitioners) }, authored: new Date(at).toISOString(), item: [{ linkId: 'rating', answer: [{ valueInteger: 1 + Math.floor(r() * 5) }] }] } });
  }
  await transaction(base, entries);
  return { orgA, orgB, orgC, roles, patients };
}

/** Every current resource of a type, through search. */
export async function all(base: string, type: string): Promise<any[]> {
  const out: any[] = [];
  let url: string | undefined = `${base}/${type}?_count=1000`;
  while (url) {
    const res: any = await http("GET", url);
    if (res.status !== 200) throw new Error(`${type} search: ${res.status}`);
    out.push(...(res.body.entry ?? []).map((e: any) => e.resource));
    url = res.body.link?.find((l: any) => l.relation === 'next')?.url;
  }
  return out;
}

function local(zone: string, iso: string): { day: string; hour: number } {
  const f = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', hourCycle: 'h23' });
  const p = Object.fromEntries(f.formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
  return { day: `${p.year}-${p.month}-${p.day}`, hour: Number(p.hour) };
}

function daysBetween(start: string, end: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${start}T00:00:00Z`); t <= Date.parse(`${end}T00:00:00Z`); t += 86_400_000) out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}

const r2 = (x: number) => Math.round(x * 100) / 100;

/**
 * Every figure of $analytics recomputed from the resources: `org` an Organization id or undefined (system).
 */
export async function bruteForce(base: string, org: string | undefined, start: string, end: string, zone: string): Promise<any> {
  const [appts, encounters, invoices, payments, slots, schedules, reviews, roles, orgs, patients] = await Promise.all(
    ['Appointment', 'Encounter', 'Invoice', 'PaymentReconciliation', 'Slot', 'Schedule', 'QuestionnaireResponse', 'PractitionerRole', 'Organization', 'Patient'].map((t) => all(base, t)));
  const roleById = new Map(roles.map((x) => [`PractitionerRole/${x.id}`, x]));
  const orgOfRole = (ref: string | undefined) => roleById.get(ref ?? '')?.organization?.reference?.split('/')[1];
  const days = daysBetween(start, end);
  const n = days.length;
  const prevDays = daysBetween(new Date(Date.parse(`${start}T00:00:00Z`) - n * 86_400_000).toISOString().slice(0, 10), new Date(Date.parse(`${start}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10));
  const roleOf = (a: any) => a.participant.map((p: any) => p.actor.reference).find((x: string) => x.startsWith('PractitionerRole/'));
  const patientOf = (a: any) => a.participant.map((p: any) => p.actor.reference).find((x: string) => x.startsWith('Patient/'));
  const inScope = (o: string | undefined) => !org || o === org;
  const countedAppts = appts.filter((a) => !['proposed', 'entered-in-error'].includes(a.status) && inScope(orgOfRole(roleOf(a))));
  const inDays = (iso: string, ds: string[]) => ds.includes(local(zone, iso).day);
  const cur = countedAppts.filter((a) => inDays(a.start, days));
  const prev = countedAppts.filter((a) => inDays(a.start, prevDays));
  const byStatus: Record<string, number> = {};
  for (const a of cur) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
  const daily: Record<string, number> = Object.fromEntries(days.map((d) => [d, cur.filter((a) => local(zone, a.start).day === d).length]));
  const peak: Record<string, number> = Object.fromEntries(Array.from({ length: 24 }, (_, h) => [String(h), cur.filter((a) => local(zone, a.start).hour === h).length]));
  const specLabel = (a: any) => a.specialty?.[0]?.coding?.[0]?.display ?? roleById.get(roleOf(a))?.specialty?.[0]?.coding?.[0]?.display;
  const specCounts = new Map<string, number>();
  for (const a of cur) specCounts.set(specLabel(a), (specCounts.get(specLabel(a)) ?? 0) + 1);
  const consults = cur.flatMap((a) => encounters.filter((e) => e.status === 'finished' && e.appointment?.[0]?.reference === `Appointment/${a.id}`).map((e) => (Date.parse(e.period.end) - Date.parse(e.period.start)) / 60_000));
  const distinct = (xs: (string | undefined)[]) => new Set(xs.filter(Boolean)).size;

  const invById = new Map(invoices.map((i) => [`Invoice/${i.id}`, i]));
  const pays = payments.map((p) => {
    const inv = invById.get(p.detail[0].request.reference);
    const apptRef = inv.extension.find((e: any) => e.url.endsWith('/invoice-appointment')).valueReference.reference;
    const appt = appts.find((a) => `Appointment/${a.id}` === apptRef);
    return { amount: p.paymentAmount.extension[0].valueInteger as number, at: p.created as string, org: inv.issuer.reference.split('/')[1], method: p.extension[0].valueCode, specialty: specLabel(appt), appt: apptRef };
  }).filter((p) => inScope(p.org));
  const curPays = pays.filter((p) => inDays(p.at, days));
  const revenue = curPays.reduce((s, p) => s + p.amount, 0);
  const prevRevenue = pays.filter((p) => inDays(p.at, prevDays)).reduce((s, p) => s + p.amount, 0);
  const money = (minor: number) => ({ value: minor / 100, currency: 'EUR' });
  const sumBy = (key: (p: any) => string) => {
    const m = new Map<string, number>();
    for (const p of curPays) m.set(key(p), (m.get(key(p)) ?? 0) + p.amount);
    return [...m.entries()];
  };
  const growth = (c: number, p: number) => (p ? { previous: p, changePercent: r2(((c - p) / p) * 100) } : { previous: p });
  const paid = distinct(curPays.map((p) => p.appt));
  const scheduleRole = new Map(schedules.map((s) => [`Schedule/${s.id}`, s.actor[0].reference]));
  const slotsIn = slots.filter((s) => ['busy', 'free'].includes(s.status) && inDays(s.start, days) && inScope(orgOfRole(scheduleRole.get(s.schedule.reference))));
  const perRole = new Map<string, { booked: number; available: number }>();
  for (const s of slotsIn) {
    const role = scheduleRole.get(s.schedule.reference)!;
    const x = perRole.get(role) ?? { booked: 0, available: 0 };
    x.available++;
    if (s.status === 'busy') x.booked++;
    perRole.set(role, x);
  }
  const booked = slotsIn.filter((s) => s.status === 'busy').length;
  const pct = (a: number, b: number) => (b ? r2((a / b) * 100) : 0);
  const practOrgs = (pr: string) => roles.filter((x) => x.practitioner.reference === pr).map((x) => x.organization.reference.split('/')[1]);
  const revs = reviews.filter((q) => q.questionnaire === REVIEW_Q && inDays(q.authored, days) && (!org || practOrgs(q.subject.reference).includes(org)));
  const byPract = new Map<string, number[]>();
  for (const q of revs) byPract.set(q.subject.reference, [...(byPract.get(q.subject.reference) ?? []), q.item[0].answer[0].valueInteger]);
  const orgName = new Map(orgs.map((o) => [o.id, o.name]));
  const verified = roles.filter((x) => x.active && !x.extension?.some((e: any) => e.valueCode === 'pending') && inScope(x.organization.reference.split('/')[1]));
  const activePatients = distinct(cur.map(patientOf));
  return {
    period: { start, end, timezone: zone, ...(org ? { organization: `Organization/${org}` } : {}) },
    overview: {
      patients: org ? distinct(appts.filter((a) => orgOfRole(roleOf(a)) === org).map(patientOf)) : patients.length,
      verifiedPractitioners: distinct(verified.map((x) => x.practitioner.reference)),
      activeOrganizations: orgs.filter((o) => o.active !== false && inScope(o.id)).length,
      appointments: cur.length, revenue: money(revenue), activePatients,
      growth: { appointments: growth(cur.length, prev.length), revenue: growth(revenue / 100, prevRevenue / 100), activePatients: growth(activePatients, distinct(prev.map(patientOf))) },
    },
    appointments: {
      total: cur.length, byStatus: Object.fromEntries(Object.entries(byStatus).sort(([a], [b]) => a.localeCompare(b))), daily,
      completionRate: pct(byStatus.fulfilled ?? 0, cur.length), noShowRate: pct(byStatus.noshow ?? 0, cur.length),
      specialties: [...specCounts.entries()].map(([name, c]) => ({ name, appointments: c })).sort((a, b) => b.appointments - a.appointments || a.name.localeCompare(b.name)).slice(0, 10),
      peakHours: peak,
      ...(consults.length ? { averageConsultationMinutes: r2(consults.reduce((s, x) => s + x, 0) / consults.length) } : {}),
    },
    revenue: {
      total: money(revenue),
      daily: Object.fromEntries(days.map((d) => [d, money(curPays.filter((p) => local(zone, p.at).day === d).reduce((s, p) => s + p.amount, 0))])),
      bySpecialty: sumBy((p) => p.specialty ?? 'unknown').map(([name, v]) => ({ name, amount: money(v) })).sort((a, b) => b.amount.value - a.amount.value || a.name.localeCompare(b.name)),
      byOrganization: sumBy((p) => p.org).map(([o, v]) => ({ organization: `Organization/${o}`, name: orgName.get(o), amount: money(v) })).sort((a, b) => b.amount.value - a.amount.value || a.organization.localeCompare(b.organization)),
      byPaymentMethod: sumBy((p) => p.method).map(([method, v]) => ({ method, amount: money(v) })).sort((a, b) => b.amount.value - a.amount.value || a.method.localeCompare(b.method)),
      paidAppointments: paid,
      ...(paid ? { averagePerPaidAppointment: money(Math.round(revenue / paid)) } : {}),
    },
    practitioners: {
      slotUtilisation: { booked, available: slotsIn.length, ...(slotsIn.length ? { rate: pct(booked, slotsIn.length) } : {}) },
      roles: [...perRole.entries()].map(([role, x]) => ({ role, ...x, ...(x.available ? { rate: pct(x.booked, x.available) } : {}) })).sort((a, b) => a.role.localeCompare(b.role)),
      ratings: [...byPract.entries()].map(([practitioner, xs]) => ({ practitioner, average: r2(xs.reduce((s, x) => s + x, 0) / xs.length), reviews: xs.length }))
        .sort((a, b) => b.average - a.average || b.reviews - a.reviews || a.practitioner.localeCompare(b.practitioner)),
    },
  };
}
