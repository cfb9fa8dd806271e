/**
 * Core REST benchmark: creates N Patients and reads them back by id with K concurrent clients over HTTP,
 * then does the same work directly with the MongoDB driver on the same engine (the ratio is the figure).
 *   MONGODB_URI=mongodb://127.0.0.1:27017/ npm run bench -- [--n 2000] [--clients 8] [--reads 3]
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { MongoClient, type Collection } from 'mongodb';
import { createCollections, searchIndexer } from '../src/server.js';
import { createLogger } from '../src/infra/logger.js';
import { loadDefinitions } from '../src/fhir/definitions.js';
import { percentiles, runConcurrent } from './lib/stats.js';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '2000' }, clients: { type: 'string', default: '8' }, reads: { type: 'string', default: '3' } } });
if (!process.env.MONGODB_URI) {
  console.error('Set MONGODB_URI: the benchmark measures a real engine, never an embedded one.');
  process.exit(2);
}
const N = Number(values.n);
const K = Number(values.clients);
const READS = N * Number(values.reads);
// Node's fetch keeps connections alive by default, so connection setup is not what gets measured.

const FAMILIES = ['García', 'Smith', 'Nguyễn', 'Müller', 'Okafor', 'Kowalski', 'Yılmaz', 'Silva', 'Chen', "O'Brien"];
const GIVEN = ['Ana', 'John', 'Mei', 'Jürgen', 'Chidi', 'Zofia', 'Ayşe', 'João', 'Li', 'Siobhán'];
function patient(i: number) {
  return {
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: `MRN${100000 + i}` }, { system: 'http://hl7.org/fhir/sid/us-ssn', value: `999-${String(i).padStart(6, '0')}` }],
    active: true,
    name: [{ use: 'official', family: FAMILIES[i % 10], given: [GIVEN[(i * 7) % 10], GIVEN[(i * 3) % 10]] }],
    telecom: [{ system: 'phone', value: `+1-555-${String(i % 10000).padStart(4, '0')}`, use: 'home' }, { system: 'email', value: `p${i}@example.org` }],
    gender: i % 2 ? 'female' : 'male',
    birthDate: `${1940 + (i % 70)}-${String((i % 12) + 1).padStart(2, '0')}-${String((i % 28) + 1).padStart(2, '0')}`,
    address: [{ use: 'home', line: [`${i} Main St`], city: 'Springfield', state: 'IL', postalCode: '62701', country: 'US' }],
  };
}

type Row = { op: string; count: number; seconds: number; ms: number[] };
const rows: Row[] = [];
const record = (op: string, count: number, seconds: number, ms: number[]) => rows.push({ op, count, seconds, ms });

const dbName = `bench_core_${process.pid}`;
// The server runs in its own process, as in production, so the load generator does not share its event loop.
const server = await startServerProcess({ MONGODB_DB: dbName, LOG_LEVEL: 'silent' });
const client = await new MongoClient(process.env.MONGODB_URI).connect();
// Requests carry a Backend Services token, as every client's must.
const token = await serviceTokenSource(client.db(dbName), server.url);
const engine = await client.db('admin').command({ buildInfo: 1 }).then((b) => (b.ferretdbVersion ? `FerretDB ${b.ferretdbVersion}` : `MongoDB ${b.version}`));
try {
  const base = `${server.url}/fhir`;
  const ids: string[] = new Array(N);
  let t = performance.now();
  let ms = await runConcurrent(N, K, async (i) => {
    const r = await fetch(`${base}/Patient`, { method: 'POST', headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${await token()}` }, body: JSON.stringify(patient(i)) });
    const body = (await r.json()) as { id: string };
    if (r.status !== 201) throw new Error(`create ${i}: HTTP ${r.status}`);
    ids[i] = body.id;
  });
  record('HTTP create', N, (performance.now() - t) / 1000, ms);

  t = performance.now();
  ms = await runConcurrent(READS, K, async () => {
    const r = await fetch(`${base}/Patient/${ids[Math.floor(Math.random() * N)]}`, { headers: { authorization: `Bearer ${await token()}` } });
    await r.text();
    if (r.status !== 200) throw new Error(`read: HTTP ${r.status}`);
  });
  record('HTTP read', READS, (performance.now() - t) / 1000, ms);

  // The same work straight through the driver: the history insert, the current insert, a read by _id of
  // the stored JSON text (what the server sends), on a database of its own on the same engine.
  const raw = client.db(`${dbName}_raw`);
  // The indexes the server creates for a type (Collections.ready: multikey on MongoDB, GIN through FerretDB's PostgreSQL).
  const rawStorage = createCollections(raw, engine.startsWith('FerretDB'), process.env.FERRETDB_POSTGRES_URL, createLogger('silent'));
  await rawStorage.collections.ready('Patient');
  const current = rawStorage.collections.current('Patient') as unknown as Collection<Record<string, unknown> & { _id: string }>;
  const history = rawStorage.collections.history('Patient') as unknown as Collection<Record<string, unknown> & { _id: string }>;
  // The search parameters come from the R4 definitions: without them the index would be empty, and the driver's
  // current documents would hold a fifth of the bytes of the server's.
  loadDefinitions();
  if (!searchIndexer(patient(0)).tk.length) throw new Error('the search index of a Patient came out empty');
  const rawIds: string[] = new Array(N);
  t = performance.now();
  ms = await runConcurrent(N, K, async (i) => {
    const id = randomUUID();
    const lu = new Date();
    const resource = { ...patient(i), id, meta: { versionId: '1', lastUpdated: lu.toISOString() } };
    const json = JSON.stringify(resource);
    const doc = { t: 'Patient', id, v: 1, lu, del: false, json, m: 'POST' };
    await history.insertOne({ _id: `Patient/${id}/1`, ...doc });
    await current.insertOne({ _id: `Patient/${id}`, ...doc, ...searchIndexer(resource) });
    rawIds[i] = id;
  });
  record('driver create', N, (performance.now() - t) / 1000, ms);
  t = performance.now();
  ms = await runConcurrent(READS, K, async () => {
    const d = await current.findOne({ _id: `Patient/${rawIds[Math.floor(Math.random() * N)]}` }, { projection: { json: 1, v: 1, lu: 1, del: 1 } });
    if (!d) throw new Error('driver read: missing');
  });
  record('driver read', READS, (performance.now() - t) / 1000, ms);
  await rawStorage.pgIndexes?.close();
  await raw.dropDatabase();
} finally {
  await server.stop();
  await client.db(dbName).dropDatabase();
  await client.close();
}

console.log(`engine: ${engine}  node ${process.version}  N=${N} clients=${K}`);
console.log('operation      |  count |   ops/s |  p50 ms |  p95 ms |  p99 ms');
for (const r of rows) {
  const p = percentiles(r.ms);
  console.log(`${r.op.padEnd(14)} | ${String(r.count).padStart(6)} | ${(r.count / r.seconds).toFixed(0).padStart(7)} | ${p.p50.toFixed(1).padStart(7)} | ${p.p95.toFixed(1).padStart(7)} | ${p.p99.toFixed(1).padStart(7)}`);
}
const rate = (op: string) => rows.find((r) => r.op === op)!;
const ratio = (a: string, b: string) => ((rate(a).count / rate(a).seconds / (rate(b).count / rate(b).seconds)) * 100).toFixed(0);
console.log(`HTTP/driver throughput: reads ${ratio('HTTP read', 'driver read')}%, creates ${ratio('HTTP create', 'driver create')}%`);
