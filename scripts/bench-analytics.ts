/**
 * $analytics latency over a synthetic projection: `--facts N` flat facts (60 % appointments, 25 % payments,
 * 12 % slots, 3 % reviews, plus roles, organizations and patients) over `--days` days and `--orgs`
 * Organizations, written straight into `analytics_facts` of a fresh database (what the projection holds for
 * a data set of about that many resources). Then a server process answers `$analytics` over HTTP:
 * cold (a new period each time: a cache miss, every pipeline runs) and warm (the same request again: from
 * the cache), system-wide and for one Organization. Then the same figure set computed in this process, no
 * server: through the driver's pipelines (src/analytics/pipelines.ts + metrics.ts) and, with
 * FERRETDB_POSTGRES_URL, as SQL on FerretDB's PostgreSQL (src/infra/ferretdb-aggregate.ts, what the server
 * uses unless FERRETDB_SQL_ANALYTICS=false). Printed: cold HTTP / the engine the server uses (the server's
 * overhead: token, access, catch-up, cache, Parameters) and driver / SQL (what the SQL path gains). Both
 * in-process runs follow the HTTP requests on the same period, so they find its rows in PostgreSQL's buffers.
 *
 *   MONGODB_URI=… [FERRETDB_POSTGRES_URL=…] [REDIS_URL=…] npx tsx scripts/bench-analytics.ts [--facts 100000] [--orgs 20] [--days 365] [--runs 20]
 */
import { MongoClient, type Document } from 'mongodb';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';
import { percentiles } from './lib/stats.js';
import { BUCKET_MS, FACT_FIELDS, withKeys, type Fact } from '../src/analytics/facts.js';
import { FerretPostgresIndexes } from '../src/infra/ferretdb-postgres.js';
import { createLogger } from '../src/infra/logger.js';
import { runPipelines } from '../src/analytics/pipelines.js';
import { assemble } from '../src/analytics/metrics.js';
import { parsePeriod, previousPeriod } from '../src/analytics/period.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const FACTS = arg('facts', 100_000);
const ORGS = arg('orgs', 20);
const DAYS = arg('days', 365);
const RUNS = arg('runs', 20);
const uri = process.env.MONGODB_URI;
if (!uri) throw new Error('set MONGODB_URI');

const dbName = `bench_analytics_${Date.now()}`;
const client = await MongoClient.connect(uri);
const db = client.db(dbName);
const T0 = Date.UTC(2026, 0, 1);
let seed = 42;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
const line = (s: string) => process.stdout.write(`${s}\n`);

let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
const pgUrl = process.env.FERRETDB_POSTGRES_URL;
const serverSql = !!pgUrl && process.env.FERRETDB_SQL_ANALYTICS !== 'false';
const pgIndexes = pgUrl ? new FerretPostgresIndexes(pgUrl, dbName, createLogger('silent')) : undefined;
try {
  server = await startServerProcess({ MONGODB_DB: dbName, LOG_LEVEL: 'warn', JOBS_ENABLED: 'false' });
  // /health answers before start-up is complete; the token endpoint is mounted once /ready says so.
  for (let i = 0; !(await fetch(`${server.url}/ready`).then((r) => r.ok, () => false)); i++) {
    if (i > 300) throw new Error('the server did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  const token = await serviceTokenSource(db, server.url);
  const orgIds: string[] = [];
  for (let i = 0; i < ORGS; i++) {
    const res = await fetch(`${server.url}/fhir/Organization`, {
      method: 'POST', headers: { authorization: `Bearer ${await token()}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Organization', name: `Bench clinic ${i}`, active: true, extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/timezone', valueCode: pick(['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'UTC']) }] }),
    });
    orgIds.push(((await res.json()) as { id: string }).id);
  }
  // Let the projection apply the Organizations' own changes before the synthetic facts go in beside them.
  await fetch(`${server.url}/fhir/$analytics?start=2026-01-01&end=2026-01-01`, { headers: { authorization: `Bearer ${await token()}` } });

  const t = performance.now();
  const specialties = ['Cardiology', 'Dermatology', 'Paediatrics', 'General medicine', 'Neurology', 'Orthopaedics'];
  const statuses = ['booked', 'fulfilled', 'fulfilled', 'fulfilled', 'cancelled', 'noshow', 'pending', 'arrived'];
  const batch: Document[] = [];
  const facts = db.collection<Document>('analytics_facts');
  for (let i = 0; i < FACTS; i++) {
    const ms = T0 + Math.floor(rnd() * DAYS * 86_400_000);
    const org = pick(orgIds);
    const x = rnd();
    const common = { org, ms, qb: Math.floor(ms / BUCKET_MS), v: 1 };
    if (x < 0.6) batch.push({ _id: `Appointment/b${i}`, kind: 'appt', ...common, status: pick(statuses), patient: `p${Math.floor(rnd() * FACTS / 10)}`, role: `r${Math.floor(rnd() * ORGS * 10)}`, specialty: pick(specialties), ...(rnd() < 0.4 ? { consult: 10 + Math.floor(rnd() * 40) } : {}) });
    else if (x < 0.85) batch.push({ _id: `PaymentReconciliation/b${i}`, kind: 'pay', ...common, amount: 2500 + Math.floor(rnd() * 200) * 50, currency: 'EUR', method: pick(['card', 'card', 'cash', 'sepa_debit']), specialty: pick(specialties), appt: `Appointment/b${i - 1}` });
    else if (x < 0.97) batch.push({ _id: `Slot/b${i}`, kind: 'slot', ...common, status: pick(['busy', 'free', 'free']), role: `r${Math.floor(rnd() * ORGS * 10)}` });
    else if (x < 0.995) batch.push({ _id: `QuestionnaireResponse/b${i}`, kind: 'review', ...common, orgs: [org], practitioner: `pr${Math.floor(rnd() * ORGS * 10)}`, rating: 1 + Math.floor(rnd() * 5) });
    else batch.push({ _id: `Patient/b${i}`, kind: 'patient', v: 1 });
    if (batch.length === 5000) await facts.insertMany(batch.splice(0).map((f) => withKeys(f as Fact) as Document));
  }
  if (batch.length) await facts.insertMany(batch.splice(0).map((f) => withKeys(f as Fact) as Document));
  for (let i = 0; i < ORGS * 10; i++) await facts.insertOne({ _id: `PractitionerRole/r${i}` as unknown as Document['_id'], kind: 'role', org: pick(orgIds), practitioner: `pr${i}`, active: rnd() < 0.9, v: 1 });
  if (pgIndexes) {
    // The same indexes the server creates at start when FERRETDB_SQL_ANALYTICS is on (there when it is).
    await pgIndexes.ensureRangeIndexes('analytics_facts', [['km', 'ms'], ['kom', 'ms']]);
    // No ANALYZE here: the server brings the table's statistics up to date itself when they are stale
    // (infra/ferretdb-tables.ts), as it must where autovacuum is off; the first cold request pays for it.
  }
  const native = pgIndexes?.aggregation('analytics_facts', FACT_FIELDS);
  line(`seeded ${FACTS} facts over ${DAYS} days, ${ORGS} organizations in ${((performance.now() - t) / 1000).toFixed(1)} s (database ${dbName}, ${uri.includes('27017') ? '' : 'FerretDB port '}${new URL(uri).port})`);

  const period = (i: number) => {
    const s = new Date(T0 + (i % (DAYS - 31)) * 86_400_000).toISOString().slice(0, 10);
    const e = new Date(T0 + ((i % (DAYS - 31)) + 29) * 86_400_000).toISOString().slice(0, 10);
    return { start: s, end: e };
  };
  const timeHttp = async (path: string, p: { start: string; end: string }) => {
    const t1 = performance.now();
    const res = await fetch(`${server!.url}/fhir/${path}$analytics?start=${p.start}&end=${p.end}`, { headers: { authorization: `Bearer ${await token()}` } });
    await res.text();
    if (res.status !== 200) throw new Error(`$analytics: ${res.status}`);
    return { ms: performance.now() - t1, cache: res.headers.get('x-analytics-cache') };
  };
  const fmt = (xs: number[]) => {
    const q = percentiles(xs);
    return `p50 ${q.p50.toFixed(1)} ms, p95 ${q.p95.toFixed(1)} ms`;
  };
  for (const [label, path, org] of [['system-wide', '', undefined], ['one organization', `Organization/${orgIds[0]}/`, orgIds[0]]] as const) {
    const cold: number[] = [];
    const warm: number[] = [];
    const raw: number[] = [];
    const sql: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const p = period(i * 7 + (org ? 3 : 0));
      const c = await timeHttp(path, p);
      if (c.cache !== 'miss') throw new Error('expected a cache miss');
      cold.push(c.ms);
      const w = await timeHttp(path, p);
      if (w.cache !== 'hit') throw new Error('expected a cache hit');
      warm.push(w.ms);
      const tz = org ? undefined : 'UTC';
      const pp = parsePeriod(p.start, p.end, tz ?? 'UTC', 366);
      let viaSql: unknown;
      if (native) {
        const t3 = performance.now();
        viaSql = assemble(await runPipelines(facts, org, pp, previousPeriod(pp), { native }), pp, org);
        sql.push(performance.now() - t3);
      }
      const t2 = performance.now();
      const viaDriver = assemble(await runPipelines(facts, org, pp, previousPeriod(pp)), pp, org);
      raw.push(performance.now() - t2);
      if (native && JSON.stringify(viaSql) !== JSON.stringify(viaDriver)) throw new Error(`SQL and driver figures differ for ${p.start}..${p.end}`);
    }
    const ratio = (a: number[], b: number[]) => `p50 ${(percentiles(a).p50 / percentiles(b).p50).toFixed(2)}x, p95 ${(percentiles(a).p95 / percentiles(b).p95).toFixed(2)}x`;
    line(`${label}, 30-day periods, ${RUNS} runs (server: ${serverSql ? 'SQL on PostgreSQL' : 'driver pipelines'}):`);
    line(`  cold (cache miss) over HTTP: ${fmt(cold)}`);
    line(`  warm (cache hit) over HTTP:  ${fmt(warm)}`);
    if (native) line(`  same passes as SQL directly: ${fmt(sql)}`);
    line(`  same pipelines via driver:   ${fmt(raw)}`);
    line(`  cold HTTP / ${serverSql ? 'SQL' : 'driver'}: ${ratio(cold, serverSql ? sql : raw)}`);
    if (native) line(`  driver / SQL: ${ratio(raw, sql)}`);
  }
} finally {
  await server?.stop();
  if (!process.env.BENCH_KEEP_DB) await db.dropDatabase().catch(() => undefined);
  await client.close();
  await pgIndexes?.close();
}
