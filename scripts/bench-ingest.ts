/**
 * Ingest benchmark: posts realistic patient transaction Bundles to the real server at several concurrencies
 * and writes the same documents directly with the driver's insertMany, on the same engine.
 *   MONGODB_URI=mongodb://127.0.0.1:27017/ npm run bench-ingest -- [--set synthea|small25] [--concurrency 1,4,8]
 * Prints resources/s and per-bundle latency for each; the HTTP/driver ratio is the figure to quote.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/config.js';
import { createLogger } from '../src/infra/logger.js';
import { createCollections, searchIndexer, startServer } from '../src/server.js';
import { rewriteReferences } from '../src/fhir/bundles/references.js';
import { serviceTokenSource } from './lib/service-token.js';
import { percentiles, runConcurrent } from './lib/stats.js';

const { values } = parseArgs({ options: { set: { type: 'string', default: 'synthea' }, concurrency: { type: 'string', default: '1,4,8' } } });
if (!process.env.MONGODB_URI) {
  console.error('Set MONGODB_URI: the benchmark measures a real engine, never an embedded one.');
  process.exit(2);
}

type Bundle = { resourceType: 'Bundle'; type: string; entry: { fullUrl?: string; resource: any; request: any }[] };

function bundles(): Bundle[] {
  if (values.set === 'small25') {
    // 1 Patient + 24 Observations referring to it by urn:uuid, as in Medplum's published figure.
    return Array.from({ length: 80 }, (_, n) => {
      const pat = `urn:uuid:${randomUUID()}`;
      return {
        resourceType: 'Bundle', type: 'transaction',
        entry: [
          { fullUrl: pat, resource: { resourceType: 'Patient', name: [{ family: `Bench${n}`, given: ['Ingest'] }], birthDate: '1980-01-01' }, request: { method: 'POST', url: 'Patient' } },
          ...Array.from({ length: 24 }, (_, i) => ({
            resource: { resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] }, subject: { reference: pat }, effectiveDateTime: `2024-01-${String((i % 28) + 1).padStart(2, '0')}T10:00:00Z`, valueQuantity: { value: 60 + i, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' } },
            request: { method: 'POST', url: 'Observation' },
          })),
        ],
      };
    });
  }
  const dir = new URL('../../shared/data/synthea-smart/', import.meta.url).pathname;
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
}

/** The documents the server stores for a Bundle's resources: current + history, per type. */
function documentsOf(b: Bundle) {
  const refs = b.entry.map((e) => `${e.resource.resourceType}/${randomUUID()}`);
  const ids = new Map(b.entry.flatMap((e, i) => (e.fullUrl ? [[e.fullUrl, refs[i]!] as const] : [])));
  const byType = new Map<string, { current: any[]; history: any[] }>();
  for (const [i, e] of b.entry.entries()) {
    const [type, id] = refs[i]!.split('/');
    const lu = new Date();
    const resource = rewriteReferences({ ...e.resource, id, meta: { versionId: '1', lastUpdated: lu.toISOString() } }, (r) => ids.get(r));
    const json = JSON.stringify(resource);
    const base = { t: type, id, v: 1, lu, del: false, json, m: 'POST' };
    const g = byType.get(type!) ?? { current: [], history: [] };
    g.current.push({ _id: `${type}/${id}`, ...base, ...searchIndexer(resource) });
    g.history.push({ _id: `${type}/${id}/1`, ...base });
    byType.set(type!, g);
  }
  return byType;
}

const all = bundles();
const resources = all.reduce((n, b) => n + b.entry.length, 0);
const rows: string[] = [];
for (const concurrency of values.concurrency!.split(',').map(Number)) {
  const dbName = `bench_ingest_${process.pid}_${concurrency}`;
  const server = await startServer(loadConfig({ ...process.env, PORT: '0', LOG_LEVEL: 'silent', MONGODB_DB: dbName }), createLogger('silent'));
  try {
    const bodies = all.map((b) => JSON.stringify(b));
    const token = await serviceTokenSource(server.mongo.db, server.url);
    let t = performance.now();
    const http = await runConcurrent(bodies.length, concurrency, async (i) => {
      const r = await fetch(`${server.url}/fhir`, { method: 'POST', headers: { 'content-type': 'application/fhir+json', prefer: 'return=minimal', authorization: `Bearer ${await token()}` }, body: bodies[i] });
      await r.text();
      if (r.status !== 200) throw new Error(`bundle ${i}: HTTP ${r.status}`);
    });
    const httpSeconds = (performance.now() - t) / 1000;

    const raw = server.mongo.client.db(`${dbName}_raw`);
    // Indexed as the server's collections are (multikey on MongoDB, GIN through FerretDB's PostgreSQL).
    const rawStorage = createCollections(raw, server.mongo.isFerretDB, process.env.FERRETDB_POSTGRES_URL, createLogger('silent'));
    const docs = all.map(documentsOf);
    for (const d of docs) for (const type of d.keys()) await rawStorage.collections.ready(type);
    t = performance.now();
    const driver = await runConcurrent(all.length, concurrency, async (i) => {
      for (const [type, g] of docs[i]!) {
        await rawStorage.collections.history(type).insertMany(g.history as never[]);
        await rawStorage.collections.current(type).insertMany(g.current as never[]);
      }
    });
    await rawStorage.pgIndexes?.close();
    const driverSeconds = (performance.now() - t) / 1000;
    await raw.dropDatabase();
    const h = percentiles(http);
    const d = percentiles(driver);
    rows.push(
      `${String(concurrency).padStart(3)} | HTTP   | ${(resources / httpSeconds).toFixed(0).padStart(7)} | ${h.p50.toFixed(0).padStart(6)} | ${h.p95.toFixed(0).padStart(6)} |`,
      `${String(concurrency).padStart(3)} | driver | ${(resources / driverSeconds).toFixed(0).padStart(7)} | ${d.p50.toFixed(0).padStart(6)} | ${d.p95.toFixed(0).padStart(6)} | HTTP/driver ${((driverSeconds / httpSeconds) * 100).toFixed(0)}%`,
    );
  } finally {
    await server.mongo.db.dropDatabase();
    await server.close();
  }
}
console.log(`engine: ${process.env.MONGODB_URI}  set: ${values.set}  bundles: ${all.length}  resources: ${resources}  node ${process.version}`);
console.log('  c | path   | res/s   | p50 ms | p95 ms | (per bundle)');
for (const r of rows) console.log(r);
