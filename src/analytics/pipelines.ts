import type { Collection, Document } from 'mongodb';
import type { Fact } from './facts.js';
import type { Period } from './period.js';

/**
 * The aggregation pipelines behind every figure, over `analytics_facts`. They use only what FerretDB 1.24 and
 * MongoDB answer alike: $match, $group with ONE accumulator ($sum) per stage (FerretDB 1.24 returns 0 for
 * every accumulator after the first: test/analytics.test.ts checks each figure against a recomputation),
 * $count. Time series are grouped by quarter-hour bucket (`qb`) and mapped to local days and hours
 * afterwards, which is exact in every time zone (all UTC offsets are multiples of 15 minutes) and across DST.
 */
export type PipelineName =
  | 'patients' | 'practitioners' | 'organizations' | 'apptByStatusBucket' | 'apptPrevCount' | 'activePatients' | 'activePatientsPrev'
  | 'specialties' | 'consultSum' | 'consultCount' | 'revenueByBucket' | 'revenuePrev' | 'revenueBySpecialty' | 'revenueByOrg'
  | 'revenueByMethod' | 'revenueCurrency' | 'paidAppointments' | 'slots' | 'ratingSum' | 'ratingCount' | 'orgNames';

/** `org`: an Organization id, or undefined for the whole system. */
export function pipelines(org: string | undefined, p: Period, prev: Period): Record<PipelineName, Document[]> {
  const scope = org ? { org } : {};
  const inPeriod = { ms: { $gte: p.startMs, $lt: p.endMs } };
  const inPrev = { ms: { $gte: prev.startMs, $lt: prev.endMs } };
  const counted = { status: { $nin: ['proposed', 'entered-in-error'] } };
  const appt = { kind: 'appt', ...scope, ...counted };
  const pay = { kind: 'pay', ...scope };
  const distinctCount = (match: Document, field: string) => [{ $match: { ...match, [field]: { $exists: true } } }, { $group: { _id: `$${field}` } }, { $count: 'n' }];
  return {
    patients: org ? distinctCount({ kind: 'appt', org }, 'patient') : [{ $match: { kind: 'patient' } }, { $count: 'n' }],
    practitioners: distinctCount({ kind: 'role', active: true, ...scope }, 'practitioner'),
    organizations: [{ $match: { kind: 'org', active: true, ...scope } }, { $count: 'n' }],
    apptByStatusBucket: [{ $match: { ...appt, ...inPeriod } }, { $group: { _id: { s: '$status', q: '$qb' }, n: { $sum: 1 } } }],
    apptPrevCount: [{ $match: { ...appt, ...inPrev } }, { $count: 'n' }],
    activePatients: distinctCount({ ...appt, ...inPeriod }, 'patient'),
    activePatientsPrev: distinctCount({ ...appt, ...inPrev }, 'patient'),
    specialties: [{ $match: { ...appt, ...inPeriod } }, { $group: { _id: '$specialty', n: { $sum: 1 } } }],
    consultSum: [{ $match: { ...appt, ...inPeriod, consult: { $exists: true } } }, { $group: { _id: null, n: { $sum: '$consult' } } }],
    consultCount: [{ $match: { ...appt, ...inPeriod, consult: { $exists: true } } }, { $count: 'n' }],
    revenueByBucket: [{ $match: { ...pay, ...inPeriod } }, { $group: { _id: '$qb', n: { $sum: '$amount' } } }],
    revenuePrev: [{ $match: { ...pay, ...inPrev } }, { $group: { _id: null, n: { $sum: '$amount' } } }],
    revenueBySpecialty: [{ $match: { ...pay, ...inPeriod } }, { $group: { _id: '$specialty', n: { $sum: '$amount' } } }],
    revenueByOrg: [{ $match: { ...pay, ...inPeriod } }, { $group: { _id: '$org', n: { $sum: '$amount' } } }],
    revenueByMethod: [{ $match: { ...pay, ...inPeriod } }, { $group: { _id: '$method', n: { $sum: '$amount' } } }],
    revenueCurrency: [{ $match: { ...pay, currency: { $exists: true } } }, { $group: { _id: '$currency', n: { $sum: 1 } } }],
    paidAppointments: distinctCount({ ...pay, ...inPeriod }, 'appt'),
    slots: [{ $match: { kind: 'slot', ...scope, ...inPeriod, status: { $in: ['busy', 'free'] } } }, { $group: { _id: { r: '$role', s: '$status' }, n: { $sum: 1 } } }],
    ratingSum: [{ $match: { kind: 'review', ...(org ? { orgs: org } : {}), ...inPeriod } }, { $group: { _id: '$practitioner', n: { $sum: '$rating' } } }],
    ratingCount: [{ $match: { kind: 'review', ...(org ? { orgs: org } : {}), ...inPeriod } }, { $group: { _id: '$practitioner', n: { $sum: 1 } } }],
    orgNames: [{ $match: { kind: 'org' } }, { $group: { _id: { id: '$org', name: '$name' }, n: { $sum: 1 } } }],
  };
}

export type RawResults = Record<PipelineName, { _id: any; n: number }[]>;

/** Runs every pipeline (in parallel) through the driver. */
export async function runPipelines(facts: Collection<Fact> | Collection<Document>, org: string | undefined, p: Period, prev: Period): Promise<RawResults> {
  const all = pipelines(org, p, prev);
  const names = Object.keys(all) as PipelineName[];
  const results = await Promise.all(names.map((n) => facts.aggregate<{ _id: any; n: number }>(all[n]).toArray()));
  return Object.fromEntries(names.map((n, i) => [n, results[i]!])) as RawResults;
}
