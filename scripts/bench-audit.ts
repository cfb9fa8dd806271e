/**
 * What the audit trail costs on the read path: two server processes on one database, one with AUDIT_ENABLED=true
 * and one with false, both reading N patients by id with C concurrent clients. The machine running it may be
 * shared and loaded, so the two are measured alternately (the order flips every round) and medians are quoted.
 *   MONGODB_URI=mongodb://127.0.0.1:27017/ npm run bench-audit -- [--patients 200] [--requests 500] [--rounds 15] [--concurrency 8] [--no-frames] [--a-a] [--audit-last]
 * (--a-a: both servers without audit, to see how far two identical servers differ on this machine;
 *  --audit-last: start the server without audit first, since the first-started of two identical servers can
 *  be a few percent slower or faster on a loaded machine and that should not count for or against auditing;
 *  BENCH_DIST=1: the compiled servers of `npm run build`, as `npm start` runs them)
 * Each round also prints the CPU time per read of the server process and of the database's processes (from
 * /proc), which says what auditing a read costs in CPU when the machine's load makes throughput jump.
 * The database is a fresh bench_audit_<pid>, dropped at the end.
 */
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { percentiles, runConcurrent } from './lib/stats.js';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';
import { matchingCpuMs, processCpuMs } from './lib/proc-cpu.js';

const { values } = parseArgs({
  options: { patients: { type: 'string', default: '200' }, requests: { type: 'string', default: '500' }, rounds: { type: 'string', default: '15' }, concurrency: { type: 'string', default: '8' }, 'no-frames': { type: 'boolean', default: false }, 'a-a': { type: 'boolean', default: false }, 'audit-last': { type: 'boolean', default: false } },
});
if (!process.env.MONGODB_URI) {
  console.error('Set MONGODB_URI: the benchmark measures a real engine, never an embedded one.');
  process.exit(2);
}
const PATIENTS = Number(values.patients);
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);
const CONCURRENCY = Number(values.concurrency);
if (![PATIENTS, REQUESTS, ROUNDS, CONCURRENCY].every((n) => Number.isInteger(n) && n > 0)) {
  console.error('--patients, --requests, --rounds and --concurrency take positive integers');
  process.exit(2);
}
const dbName = `bench_audit_${process.pid}`;
// As npm start and the Docker image run it (AsyncLocalStorage without a promise hook on every await, Node 22);
// --no-frames measures without, to show what that flag is worth.
const common = {
  MONGODB_DB: dbName, LOG_LEVEL: 'silent', JOBS_ENABLED: 'false', SUBSCRIPTIONS_WORKER: 'false',
  ...(values['no-frames'] ? {} : { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --experimental-async-context-frame`.trim() }),
};
const startAudit = () => startServerProcess({ ...common, AUDIT_ENABLED: values['a-a'] ? 'false' : 'true' });
const startPlain = () => startServerProcess({ ...common, AUDIT_ENABLED: 'false' });
const [auditServer, plainServer] = values['audit-last']
  ? await startPlain().then(async (plain) => [await startAudit(), plain] as const)
  : await startAudit().then(async (audit) => [audit, await startPlain()] as const);
const servers = { audit: auditServer, 'no audit': plainServer };
const client = await new MongoClient(process.env.MONGODB_URI).connect();
const db = client.db(dbName);
/**
 * The database's processes, whose CPU time each round reads from /proc (Linux only; NaN elsewhere): the
 * FerretDB or mongod listening on MONGODB_URI's port and, under FerretDB, the PostgreSQL backends of its
 * database (FERRETDB_POSTGRES_URL), not other databases' on the same machine.
 */
const DB_PROCESSES = (() => {
  const port = /:(\d+)(?:\/|$|,)/.exec(process.env.MONGODB_URI!.replace(/^mongodb(\+srv)?:\/\/([^@/]*@)?/, ':'))?.[1] ?? '27017';
  const pgDb = process.env.FERRETDB_POSTGRES_URL ? new URL(process.env.FERRETDB_POSTGRES_URL).pathname.slice(1) : undefined;
  return [`127.0.0.1:${port}`, `--port ${port}`, ...(pgDb ? [`postgres: postgres ${pgDb} `] : [])];
})();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  const tokens = { audit: await serviceTokenSource(db, servers.audit.url), 'no audit': await serviceTokenSource(db, servers['no audit'].url) };
  const ids: string[] = [];
  const token = await tokens['no audit']();
  for (let i = 0; i < PATIENTS; i++) {
    const res = await fetch(`${servers['no audit'].url}/fhir/Patient`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Patient', name: [{ family: `Bench${i}`, given: ['Audit'] }], birthDate: '1980-01-01' }),
    });
    if (res.status !== 201) throw new Error(`create failed: ${res.status}`);
    ids.push(((await res.json()) as { id: string }).id);
  }
  const measure = async (mode: keyof typeof servers) => {
    const t = await tokens[mode]();
    const url = servers[mode].url;
    // warm-up: connections, caches
    await runConcurrent(Math.min(200, REQUESTS), CONCURRENCY, async (i) => void (await (await fetch(`${url}/fhir/Patient/${ids[i % ids.length]}`, { headers: { authorization: `Bearer ${t}` } })).arrayBuffer()));
    const cpu0 = { server: processCpuMs(servers[mode].pid), db: matchingCpuMs(DB_PROCESSES) };
    const started = performance.now();
    const ms = await runConcurrent(REQUESTS, CONCURRENCY, async (i) => {
      const res = await fetch(`${url}/fhir/Patient/${ids[(i * 7919) % ids.length]}`, { headers: { authorization: `Bearer ${t}` } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`read failed: ${res.status}`);
    });
    const rps = REQUESTS / ((performance.now() - started) / 1000);
    // CPU per read of the server process and of the database's processes: what a read costs, however loaded the machine.
    const perRead = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? NaN : (b - a) / REQUESTS);
    const cpu = { server: perRead(cpu0.server, processCpuMs(servers[mode].pid)), db: perRead(cpu0.db, matchingCpuMs(DB_PROCESSES)) };
    return { rps, p50: percentiles(ms).p50, p95: percentiles(ms).p95, cpu };
  };
  type Round = { rps: number; p50: number; p95: number; cpu: { server: number; db: number } };
  const results: Record<keyof typeof servers, Round[]> = { audit: [], 'no audit': [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order: (keyof typeof servers)[] = r % 2 ? ['audit', 'no audit'] : ['no audit', 'audit'];
    for (const mode of order) {
      const m = await measure(mode);
      results[mode].push(m);
      console.log(`round ${r + 1} ${mode.padEnd(8)} ${m.rps.toFixed(0)} req/s  p50 ${m.p50.toFixed(1)} ms  p95 ${m.p95.toFixed(1)} ms  CPU/read: server ${m.cpu.server.toFixed(3)} ms, database ${m.cpu.db.toFixed(3)} ms`);
    }
  }
  const on = median(results.audit.map((x) => x.rps));
  const off = median(results['no audit'].map((x) => x.rps));
  // Load on a shared machine drifts between rounds: the ratio within each round (both measured back to back) is steadier.
  const paired = median(results.audit.map((x, i) => x.rps / results['no audit'][i]!.rps));
  const records = await db.collection('fhir_AuditEvent').estimatedDocumentCount();
  console.log(`\nGET Patient/[id], ${PATIENTS} patients, ${REQUESTS} reads per round, ${CONCURRENCY} clients, ${ROUNDS} rounds (medians):`);
  console.log(`  without audit: ${off.toFixed(0)} req/s (p50 ${median(results['no audit'].map((x) => x.p50)).toFixed(1)} ms)`);
  console.log(`  with audit:    ${on.toFixed(0)} req/s (p50 ${median(results.audit.map((x) => x.p50)).toFixed(1)} ms)  = ${((on / off) * 100).toFixed(1)}% of the throughput without`);
  console.log(`  median of the per-round ratios (audit / no audit): ${(paired * 100).toFixed(1)}%`);
  const cpu = (mode: keyof typeof servers, k: 'server' | 'db') => median(results[mode].map((x) => x.cpu[k]));
  console.log(`  CPU per read (median): server ${cpu('no audit', 'server').toFixed(3)} → ${cpu('audit', 'server').toFixed(3)} ms, database (FerretDB + PostgreSQL, or mongod) ${cpu('no audit', 'db').toFixed(3)} → ${cpu('audit', 'db').toFixed(3)} ms`);
  // The aggregated read records (read-aggregator.ts): how many reads and entities each names.
  const reads = { records: 0, requests: 0, entities: 0 };
  for await (const d of db.collection<{ json: string }>('fhir_AuditEvent').find({}, { projection: { json: 1 } })) {
    const e = JSON.parse(d.json) as { subtype?: { code?: string }[]; entity?: { what?: unknown; detail?: { valueString?: string }[] }[] };
    const ids = e.entity?.find((x) => x.detail)?.detail?.[0]?.valueString;
    if (e.subtype?.[0]?.code !== 'read' || !ids) continue;
    reads.records++;
    reads.requests += ids.split(' ').length;
    reads.entities += e.entity!.filter((x) => x.what).length;
  }
  console.log(`  audit records stored: ${records}; ${reads.records} aggregated read records, ${(reads.requests / reads.records).toFixed(0)} reads and ${(reads.entities / reads.records).toFixed(0)} entities each on average`);
} finally {
  await servers.audit.stop();
  await servers['no audit'].stop();
  await db.dropDatabase().catch(() => undefined);
  await client.close();
}
