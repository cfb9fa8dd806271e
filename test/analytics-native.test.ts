/**
 * The analytics passes as SQL on FerretDB's PostgreSQL (infra/ferretdb-aggregate.ts) against the driver on the
 * same facts: every pipeline of `pipelines()` (one per month) and of `passPipelines()` (one per pass, all its
 * months) gives the driver's groups, on facts written to hit the edges (missing vs null group keys, numbers of
 * several BSON types, reviews counting for several organizations, months and a DST change inside the period,
 * kinds the passes must not count). Pipelines outside the translated subset answer `undefined`. Needs FerretDB
 * with FERRETDB_POSTGRES_URL (skipped otherwise, with the reason in the title); the translator checks need no database.
 */
import { randomBytes } from 'node:crypto';
import { Double, Int32, Long, MongoClient, type Document } from 'mongodb';
import pg from 'pg';
import { FACT_FIELDS, withKeys, type Fact } from '../src/analytics/facts.js';
import { mergeGroups, passPipelines, pipelines, runPipelines, type Group } from '../src/analytics/pipelines.js';
import { parsePeriod, previousPeriod } from '../src/analytics/period.js';
import { FerretPostgresIndexes } from '../src/infra/ferretdb-postgres.js';
import { translatePipeline, type FerretSqlAggregation } from '../src/infra/ferretdb-aggregate.js';
import { createLogger } from '../src/infra/logger.js';
import { FerretTables } from '../src/infra/ferretdb-tables.js';
import { waitFor } from './support/wait.js';

const pgUrl = process.env.FERRETDB_POSTGRES_URL;
const p = parsePeriod('2027-03-20', '2027-04-05', 'Europe/Berlin', 366);
const prev = previousPeriod(p);

describe('the SQL translator', () => {
  it('translates every pipeline the passes write, system-wide and for an Organization', () => {
    for (const org of [undefined, 'oa']) {
      for (const { pass, pipeline } of [...pipelines(org, p, prev), ...passPipelines(org, p, prev)]) {
        expect([pass, translatePipeline(pipeline, FACT_FIELDS) === undefined]).toEqual([pass, false]);
      }
    }
  });

  it('answers undefined for any pipeline outside its subset', () => {
    const outside: Document[][] = [
      [],
      [{ $match: { kind: 'appt' } }], // documents, not groups
      [{ $project: { kind: 1 } }, { $count: 'n' }],
      [{ $match: { $or: [{ kind: 'appt' }, { kind: 'pay' }] } }, { $count: 'n' }],
      [{ $match: { 'org.id': 'x' } }, { $count: 'n' }], // dotted path
      [{ $match: { unknownField: 'x' } }, { $count: 'n' }], // not a declared fact field
      [{ $match: { kind: { $regex: '^ap' } } }, { $count: 'n' }],
      [{ $match: { kind: { $ne: 'appt' } } }, { $count: 'n' }],
      [{ $match: { ms: { $gte: new Date(0) } } }, { $count: 'n' }], // a Date against a number field
      [{ $match: { ms: 'x' } }, { $count: 'n' }], // a string against a number field
      [{ $match: { kind: { $in: [{ a: 1 }] } } }, { $count: 'n' }],
      [{ $match: { kind: 'appt', status: { $exists: 1 } } }, { $count: 'n' }], // $exists takes a boolean here
      [{ $group: { _id: '$status', n: { $sum: 1 }, m: { $sum: '$amount' } } }], // two accumulators
      [{ $group: { _id: '$status', n: { $avg: '$amount' } } }],
      [{ $group: { _id: '$status', n: { $sum: 2 } } }],
      [{ $group: { _id: '$status', n: { $sum: '$status' } } }], // a string field summed
      [{ $group: { _id: '$orgs', n: { $sum: 1 } } }], // an array as group key
      [{ $group: { _id: 'constant', n: { $sum: 1 } } }],
      [{ $group: { _id: { s: '$status', c: 'x' }, n: { $sum: 1 } } }],
      [{ $group: { _id: { 'a.b': '$status' }, n: { $sum: 1 } } }],
      [{ $group: { n: { $sum: 1 } } }], // no _id
      [{ $group: { _id: '$status', n: { $sum: 1 } } }, { $match: { n: { $gt: 1 } } }], // $match after $group
      [{ $group: { _id: '$status', n: { $sum: 1 } } }, { $sort: { n: -1 } }],
      [{ $match: { kind: 'appt' } }, { $count: '$n' }],
      [{ $match: { kind: 'appt' } }, { $count: 'n' }, { $count: 'm' }],
      [{ $match: { kind: 'appt' }, $limit: 1 }, { $count: 'n' }], // two operators in one stage
    ];
    for (const pipeline of outside) expect([pipeline, translatePipeline(pipeline, FACT_FIELDS)]).toEqual([pipeline, undefined]);
  });
});

const maybe = pgUrl ? describe : describe.skip;

maybe(`analytics passes as SQL against the driver on FerretDB${pgUrl ? '' : ' (skipped: FERRETDB_POSTGRES_URL is unset)'}`, () => {
  let client: MongoClient;
  let indexes: FerretPostgresIndexes;
  let sql: FerretSqlAggregation;
  let statements = 0;
  const dbName = `t_agg_${randomBytes(5).toString('hex')}`;
  const col = () => client.db(dbName).collection<Document>('analytics_facts');

  beforeAll(async () => {
    client = await MongoClient.connect(process.env.MONGODB_URI!);
    const facts: Document[] = [];
    const at = (iso: string) => Date.parse(iso);
    // Times across the period, its edges, the month change and Berlin's DST change (28 March 2027, 01:00 UTC).
    const times = [
      '2027-02-26T10:00:00Z', '2027-03-05T23:30:00Z', '2027-03-19T22:59:59.999Z', '2027-03-19T23:00:00Z', '2027-03-20T08:15:00Z',
      '2027-03-28T00:59:00Z', '2027-03-28T01:00:00Z', '2027-03-31T23:45:00Z', '2027-04-01T00:00:00Z', '2027-04-05T21:59:59.999Z',
      '2027-04-05T22:00:00Z', '2027-04-12T12:00:00Z',
    ].map(at);
    const statuses = ['booked', 'fulfilled', 'noshow', null, undefined, 'proposed', 'entered-in-error'];
    const specialties: unknown[] = ['Cardiology', 'Dermatology', null, undefined, 'Ärzte', 'Zahn'];
    const orgs = ['oa', 'ob', undefined, null];
    let i = 0;
    const put = (f: Record<string, unknown>) => {
      const clean = Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)); // undefined: missing
      facts.push(withKeys({ _id: `F/${i++}`, v: 1, ...clean } as unknown as Fact) as unknown as Document);
    };
    for (const ms of times) {
      for (let k = 0; k < 9; k++) {
        const t = ms + k * 61_000;
        const common = { ms: t, qb: k % 3 === 0 ? new Double(Math.floor(t / 900_000)) : Math.floor(t / 900_000), org: orgs[k % orgs.length] };
        put({ kind: 'appt', ...common, status: statuses[k % statuses.length], specialty: specialties[k % specialties.length], patient: [`p${k % 4}`, null, undefined][k % 3], consult: [12, undefined, null, 12.5, new Int32(30)][k % 5] });
        put({ kind: 'pay', ...common, amount: [2500, new Long(7000), new Double(1200), 'not a number', null, undefined][k % 6], currency: k % 4 ? 'EUR' : null, method: ['card', 'cash', undefined][k % 3], specialty: specialties[(k + 1) % specialties.length], appt: k % 5 ? `Appointment/a${k % 3}` : undefined });
        put({ kind: 'slot', ...common, status: ['busy', 'free', 'busy-tentative', null][k % 4], role: [`r${k % 2}`, undefined, null][k % 3] });
        put({ kind: 'review', ...common, org: undefined, orgs: [['oa'], ['oa', 'ob'], [], ['ob']][k % 4], practitioner: [`pr${k % 3}`, undefined][k % 2 ? 0 : 1], rating: [5, 4, new Double(3), null][k % 4] });
      }
    }
    for (let k = 0; k < 12; k++) {
      put({ kind: 'patient' });
      put({ kind: 'orgpatient', org: ['oa', 'ob'][k % 2], patient: `p${k}` });
      put({ kind: 'role', org: ['oa', 'ob', 'oc'][k % 3], practitioner: [`pr${k % 5}`, undefined, null][k % 3], active: [true, false, true, undefined][k % 4] });
    }
    for (const [id, name, active] of [['oa', 'Alpha', true], ['ob', null, true], ['oc', 'Gamma', false], ['od', undefined, undefined]] as const) put({ kind: 'org', org: id, name, active });
    await col().insertMany(facts);
    await col().createIndex({ km: 1 });
    indexes = new FerretPostgresIndexes(pgUrl!, dbName, createLogger('silent'));
    await indexes.ensure('analytics_facts', ['km', 'kom', 'kind']);
    await indexes.ensureRangeIndexes('analytics_facts', [['km', 'ms'], ['kom', 'ms']]);
    sql = indexes.aggregation('analytics_facts', FACT_FIELDS, () => statements++);
  }, 60_000);

  afterAll(async () => {
    await client?.db(dbName).dropDatabase().catch(() => undefined);
    await client?.close();
    await indexes?.close();
  });

  /** Groups in a canonical order, `_id` key order kept (the months are merged by it). */
  const canonical = (groups: Document[]) => groups.map((g) => JSON.stringify(g)).sort();

  it.each([['system-wide', undefined], ['Organization oa', 'oa'], ['Organization ob', 'ob']])('every month pipeline gives the driver\'s groups (%s)', async (_label, org) => {
    const before = statements;
    for (const { pass, pipeline } of pipelines(org, p, prev)) {
      const native = await sql.aggregate(pipeline);
      const driver = await col().aggregate(pipeline).toArray();
      expect([pass, native && canonical(native)]).toEqual([pass, canonical(driver)]);
    }
    expect(statements - before).toBe(pipelines(org, p, prev).length);
  });

  it.each([['system-wide', undefined], ['Organization oa', 'oa'], ['Organization ob', 'ob']])('every whole-pass pipeline gives the months\' groups added up (%s)', async (_label, org) => {
    const months = new Map<string, Group[][]>();
    for (const { pass, pipeline } of pipelines(org, p, prev)) months.set(pass, [...(months.get(pass) ?? []), await col().aggregate<Group>(pipeline).toArray()]);
    for (const { pass, pipeline } of passPipelines(org, p, prev)) {
      const native = await sql.aggregate(pipeline);
      expect([pass, native && canonical(mergeGroups([native as Group[]]))]).toEqual([pass, canonical(mergeGroups(months.get(pass)!))]);
    }
    // And the figure set as the service computes it.
    const viaSql = await runPipelines(col(), org, p, prev, { native: sql });
    const viaDriver = await runPipelines(col(), org, p, prev);
    for (const pass of Object.keys(viaDriver) as (keyof typeof viaDriver)[]) expect([pass, canonical(viaSql[pass])]).toEqual([pass, canonical(viaDriver[pass])]);
  });

  it('keeps missing and null apart in an object _id, together in a single-field _id; sums only numbers; no group over nothing', async () => {
    const all = { $match: { kind: 'appt' } };
    for (const pipeline of [
      [all, { $group: { _id: { s: '$status', sp: '$specialty' }, n: { $sum: 1 } } }],
      [all, { $group: { _id: '$specialty', n: { $sum: 1 } } }],
      [{ $match: { kind: 'pay' } }, { $group: { _id: '$method', n: { $sum: '$amount' } } }],
      [{ $match: { kind: 'pay', currency: null } }, { $group: { _id: null, n: { $sum: '$amount' } } }],
      [{ $match: { kind: 'nothing' } }, { $group: { _id: null, n: { $sum: 1 } } }],
      [{ $match: { kind: 'nothing' } }, { $count: 'n' }],
      [{ $match: { kind: 'review', orgs: { $in: ['ob', 'zz'] } } }, { $group: { _id: '$practitioner', n: { $sum: '$rating' } } }],
      [{ $match: { kind: 'appt', status: { $in: ['booked', null] }, specialty: { $gte: 'D', $lt: 'Z' } } }, { $group: { _id: '$specialty', n: { $sum: 1 } } }],
      [{ $match: { kind: 'role', practitioner: { $exists: false } } }, { $count: 'n' }],
      [{ $match: { kind: 'appt', qb: { $gt: 0 } } }, { $group: { _id: '$qb' } }, { $count: 'n' }],
    ]) {
      const native = await sql.aggregate(pipeline);
      expect([pipeline, native && canonical(native)]).toEqual([pipeline, canonical(await col().aggregate(pipeline).toArray())]);
    }
    const objectGroups = (await sql.aggregate([all, { $group: { _id: { sp: '$specialty' }, n: { $sum: 1 } } }]))!;
    expect(objectGroups.map((g) => JSON.stringify(g._id))).toEqual(expect.arrayContaining(['{}', '{"sp":null}']));
  });

  it('leaves a sum with a fraction to the driver (its floating-point order), and a non-integer pass falls back to it', async () => {
    const pipeline = [{ $match: { kind: 'appt' } }, { $group: { _id: '$status', n: { $sum: '$consult' } } }];
    expect(await sql.aggregate(pipeline)).toBeUndefined();
    expect(await sql.aggregate([{ $match: { kind: 'appt', consult: { $in: [12, 30] } } }, { $group: { _id: '$status', n: { $sum: '$consult' } } }])).toEqual(expect.any(Array));
  });

  it('gathers a table\'s planner statistics when more than 50 + 10 % of its rows changed since, not again while fresh', async () => {
    const probe = client.db(dbName).collection<Document>('stale_probe');
    const pool = new pg.Pool({ connectionString: pgUrl });
    try {
      const tables = new FerretTables(pool, dbName, createLogger('silent'));
      await probe.insertMany(Array.from({ length: 120 }, (_, i) => ({ _id: `r${i}` }) as Document));
      // PostgreSQL publishes a backend's row counts shortly after its transaction: poll for them.
      expect(await waitFor('121 new rows counted', () => tables.analyzeIfStale('stale_probe'), 15_000, 250)).toBe(true);
      expect(await tables.analyzeIfStale('stale_probe')).toBe(false); // just analyzed
      await probe.insertMany(Array.from({ length: 40 }, (_, i) => ({ _id: `s${i}` }) as Document));
      await new Promise((r) => setTimeout(r, 1500));
      expect(await tables.analyzeIfStale('stale_probe')).toBe(false); // 40 changes of 121 rows: not above 50 + 12
      await probe.insertMany(Array.from({ length: 40 }, (_, i) => ({ _id: `t${i}` }) as Document));
      expect(await waitFor('80 changes counted', () => tables.analyzeIfStale('stale_probe'), 15_000, 250)).toBe(true);
      expect(await tables.analyzeIfStale('no_such_collection')).toBe(false);
    } finally {
      await pool.end();
    }
  });

  it('matches the period of a pass on the (key, ms) index', async () => {
    const pool = new pg.Pool({ connectionString: pgUrl });
    try {
      const table = (await pool.query(`SELECT _jsonb->>'table' AS t FROM "${dbName}"._ferretdb_database_metadata WHERE _jsonb->>'_id' = 'analytics_facts'`)).rows[0].t as string;
      for (const [org, index] of [[undefined, '_mvy_km_ms'], ['oa', '_mvy_kom_ms']] as const) {
        const plan = translatePipeline(passPipelines(org, p, prev).find((x) => x.pass === 'appt')!.pipeline, FACT_FIELDS)!;
        const c = await pool.connect();
        try {
          // A table this small is read sequentially; without that option the plan shows whether the index applies.
          await c.query('SET enable_seqscan = off');
          const explain = (await c.query(`EXPLAIN ${plan.statement(`"${dbName}"."${table}"`)}`, plan.params)).rows.map((r) => r['QUERY PLAN']).join('\n');
          expect(explain).toContain(`${table}${index}`);
          expect(explain).toMatch(/Index Cond: .*ms/);
        } finally {
          await c.query('RESET enable_seqscan');
          c.release();
        }
      }
    } finally {
      await pool.end();
    }
  });
});
