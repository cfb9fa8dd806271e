import type { Collection, Document } from 'mongodb';
import { monthOf, type Fact } from './facts.js';
import type { Period } from './period.js';
import type { NativeAggregation } from './native-aggregation.js';
import { analyticsPasses } from '../infra/metrics.js';

/**
 * The aggregation pipelines behind every figure, over `analytics_facts`. They use only what FerretDB 1.24 and
 * MongoDB answer alike: $match, $group with at most ONE accumulator ($sum) per stage (FerretDB 1.24 returns 0
 * for every accumulator after the first: test/analytics.test.ts checks every figure against a
 * recomputation), $count. Each time-bound pass runs once per UTC month of its period, matching the month's
 * partition key (an equality FerretDB hands to PostgreSQL's index) and then the exact time range; the
 * months' groups are added up (or, for distinct counts, united). Time series are grouped by quarter-hour
 * bucket (`qb`) and mapped to local days and hours afterwards, which is exact in every time zone (all UTC
 * offsets are multiples of 15 minutes) and across DST changes. With a native engine (FerretDB's PostgreSQL,
 * native-aggregation.ts) each pass runs once over all its months instead (passPipelines), its range matched
 * on an index; the driver runs any pass the engine does not translate.
 */
export type Pass =
  | 'appt' | 'apptPatients' | 'apptPrevPatients'
  | 'pay' | 'payPrev' | 'payAppointments' | 'slots' | 'ratingSum' | 'ratingCount'
  | 'patients' | 'practitioners' | 'organizations' | 'orgNames';

export type Group = { _id: any; n: number };
export type RawResults = Record<Pass, Group[]>;

interface PassSpec {
  kind?: string;
  /** The period it covers (one pipeline per UTC month), or none: one pipeline over the whole kind. */
  period?: Period;
  /** The pipeline after the partition match (which the month adds). */
  stages: (monthMatch: Document) => Document[];
}

/** The UTC months an instant range [startMs, endMs) touches. */
export function monthsOf(startMs: number, endMs: number): string[] {
  const out: string[] = [];
  const d = new Date(startMs);
  let y = d.getUTCFullYear();
  let m = d.getUTCMonth();
  const last = monthOf(endMs - 1);
  for (;;) {
    const key = `${y}-${String(m + 1).padStart(2, '0')}`;
    out.push(key);
    if (key >= last) return out;
    m += 1;
    if (m === 12) (m = 0), (y += 1);
  }
}

/** `org`: an Organization id, or undefined for the whole system. */
export function passes(org: string | undefined, p: Period, prev: Period): Record<Pass, PassSpec> {
  const scope = org ? { org } : {};
  const range = (x: Period) => ({ ms: { $gte: x.startMs, $lt: x.endMs } });
  // Holds (proposed) and appointments entered in error have other partition keys (facts.ts withKeys).
  const counted = {};
  const timed = (kind: string, period: Period, extra: Document, tail: Document[]): PassSpec => ({
    kind, period, stages: (month) => [{ $match: { ...month, ...range(period), ...extra } }, ...tail],
  });
  const distinct = (field: string) => [{ $match: { [field]: { $exists: true } } }, { $group: { _id: `$${field}` } }];
  return {
    // One pass gives status, day, hour, specialty and consultation minutes (`c`: sum = Σ c·n, count = Σ n).
    appt: timed('appt', p, counted, [{ $group: { _id: { s: '$status', q: '$qb', sp: '$specialty', c: '$consult' }, n: { $sum: 1 } } }]),
    apptPatients: timed('appt', p, counted, distinct('patient')),
    // The previous period's count (Σ n) and distinct patients (groups) in one pass; appointments without a patient form the null group.
    apptPrevPatients: timed('appt', prev, counted, [{ $group: { _id: '$patient', n: { $sum: 1 } } }]),
    pay: timed('pay', p, {}, [{ $group: { _id: { q: '$qb', sp: '$specialty', o: '$org', m: '$method', c: '$currency' }, n: { $sum: '$amount' } } }]),
    payPrev: timed('pay', prev, {}, [{ $group: { _id: null, n: { $sum: '$amount' } } }]),
    payAppointments: timed('pay', p, {}, distinct('appt')),
    slots: timed('slot', p, { status: { $in: ['busy', 'free'] } }, [{ $group: { _id: { r: '$role', s: '$status' }, n: { $sum: 1 } } }]),
    // Reviews count for every Organization of the reviewed practitioner: matched on the system key, then `orgs`.
    ratingSum: { kind: 'review', period: p, stages: (month) => [{ $match: { ...month, ...range(p), ...(org ? { orgs: org } : {}) } }, { $group: { _id: '$practitioner', n: { $sum: '$rating' } } }] },
    ratingCount: { kind: 'review', period: p, stages: (month) => [{ $match: { ...month, ...range(p), ...(org ? { orgs: org } : {}) } }, { $group: { _id: '$practitioner', n: { $sum: 1 } } }] },
    patients: { stages: () => [{ $match: org ? { kind: 'orgpatient', org } : { kind: 'patient' } }, { $count: 'n' }] },
    practitioners: { stages: () => [{ $match: { kind: 'role', ...scope, active: true } }, ...distinct('practitioner'), { $count: 'n' }] },
    organizations: { stages: () => [{ $match: { kind: 'org', active: true, ...scope } }, { $count: 'n' }] },
    orgNames: { stages: () => [{ $match: { kind: 'org' } }, { $group: { _id: { id: '$org', name: '$name' }, n: { $sum: 1 } } }] },
  };
}

/** Every pipeline a figure set runs: pass name, and the pipeline (one per month for time-bound passes). */
export function pipelines(org: string | undefined, p: Period, prev: Period): { pass: Pass; pipeline: Document[] }[] {
  return Object.entries(passes(org, p, prev)).flatMap(([pass, spec]) => monthPipelines(org, spec).map((pipeline) => ({ pass: pass as Pass, pipeline })));
}

/** A pass's pipelines through the driver: one per UTC month of its period, each matching the month's partition key. */
function monthPipelines(org: string | undefined, spec: PassSpec): Document[][] {
  if (!spec.period) return [spec.stages({})];
  return monthsOf(spec.period.startMs, spec.period.endMs).map((month) => spec.stages(partitionMatch(org, spec.kind!, [month])));
}

function partitionMatch(org: string | undefined, kind: string, months: string[]): Document {
  const keys = months.map((month) => (org && kind !== 'review' ? `${kind}|${org}|${month}` : `${kind}|${month}`));
  const field = org && kind !== 'review' ? 'kom' : 'km';
  return { [field]: keys.length === 1 ? keys[0] : { $in: keys } };
}

/**
 * One pipeline per pass, matching all its months' keys at once (`$in`), for an engine that evaluates the
 * range itself (the SQL path): its groups are those of the pass's month pipelines added up, as every fact
 * has one month key (their months are disjoint) and the time-bound passes only add ($sum) or unite.
 */
export function passPipelines(org: string | undefined, p: Period, prev: Period): { pass: Pass; pipeline: Document[] }[] {
  return Object.entries(passes(org, p, prev)).map(([pass, spec]) => ({
    pass: pass as Pass,
    pipeline: spec.period ? spec.stages(partitionMatch(org, spec.kind!, monthsOf(spec.period.startMs, spec.period.endMs))) : spec.stages({}),
  }));
}

export interface RunOptions {
  /** Pipelines in flight at once. */
  concurrency?: number;
  /** Runs a whole pass in one go where it can (passPipelines); the driver runs the passes it answers `undefined` for. */
  native?: NativeAggregation;
}

/**
 * Runs every pass, a few at a time: with a native engine each pass in one go (the driver month by month for a
 * pass it does not take), else each month's pipeline through the driver; then adds up each pass's months.
 */
export async function runPipelines(facts: Collection<Fact> | Collection<Document>, org: string | undefined, p: Period, prev: Period, opts: RunOptions = {}): Promise<RawResults> {
  const specs = Object.entries(passes(org, p, prev)) as [Pass, PassSpec][];
  const driver = (pipeline: Document[]) => facts.aggregate<Group>(pipeline).toArray();
  const native = opts.native;
  let units: { pass: Pass; run: () => Promise<Group[]> }[];
  if (native) {
    const whole = new Map(passPipelines(org, p, prev).map((x) => [x.pass, x.pipeline]));
    units = specs.map(([pass, spec]) => ({
      pass,
      run: async () => {
        const rows = await native.aggregate(whole.get(pass)!);
        analyticsPasses.inc({ engine: rows ? 'sql' : 'driver' });
        if (rows) return rows as Group[];
        const months: Group[][] = [];
        for (const pipeline of monthPipelines(org, spec)) months.push(await driver(pipeline));
        return mergeGroups(months);
      },
    }));
  } else {
    units = specs.flatMap(([pass, spec]) => {
      analyticsPasses.inc({ engine: 'driver' });
      return monthPipelines(org, spec).map((pipeline) => ({ pass, run: () => driver(pipeline) }));
    });
  }
  const results: Group[][] = new Array(units.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 4, units.length) }, async () => {
    while (next < units.length) {
      const i = next++;
      results[i] = await units[i]!.run();
    }
  }));
  const byPass = new Map<Pass, Group[][]>(specs.map(([pass]) => [pass, []]));
  units.forEach((u, i) => byPass.get(u.pass)!.push(results[i]!));
  return Object.fromEntries([...byPass].map(([pass, months]) => [pass, mergeGroups(months)])) as RawResults;
}

/** A pass's groups from its months' results: the same group in several months is one, its n added. */
export function mergeGroups(months: Group[][]): Group[] {
  const m = new Map<string, Group>();
  for (const groups of months) {
    for (const g of groups) {
      const key = JSON.stringify(g._id ?? null);
      const cur = m.get(key);
      // Distinct passes have no n: a group seen in several months is still one.
      if (cur) cur.n += g.n ?? 0;
      else m.set(key, { _id: g._id ?? null, n: g.n ?? 0 });
    }
  }
  return [...m.values()];
}
