/**
 * Bulk Data export benchmark: a system `$export` of a seeded Synthea set against the floor of reading the same
 * current documents with the driver and writing their JSON as NDJSON files.
 *   MONGODB_URI=mongodb://127.0.0.1:27017/ npm run bench-export -- [--patients 20] [--file-size 100000] [--keep]
 * Seeds the first `--patients` bundles of ../shared/data/synthea-smart through the REST API (once per database:
 * `--db` reuses one), then times kick-off → manifest (and the download of every file) and the driver baseline.
 * Prints resources/s for both.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { importFiles } from '../src/bulk/import-files.js';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';

const { values } = parseArgs({
  options: { patients: { type: 'string', default: '20' }, 'file-size': { type: 'string', default: '100000' }, db: { type: 'string' }, keep: { type: 'boolean', default: false }, data: { type: 'string', default: new URL('../../shared/data/synthea-smart', import.meta.url).pathname } },
});
if (!process.env.MONGODB_URI) {
  console.error('Set MONGODB_URI: the benchmark measures a real engine, never an embedded one.');
  process.exit(2);
}
const dbName = values.db ?? `bench_export_${process.pid}`;
const server = await startServerProcess({ MONGODB_DB: dbName, LOG_LEVEL: 'silent', JOBS_POLL_MS: '200', BULK_FILE_MAX_RESOURCES: values['file-size']!, BULK_SLICE_MS: '30000' });
const client = await new MongoClient(process.env.MONGODB_URI).connect();
const db = client.db(dbName);
const out = await mkdtemp(join(tmpdir(), 'bench-export-'));
try {
  const token = await serviceTokenSource(db, server.url);
  const base = `${server.url}/fhir`;
  const headers = async () => ({ authorization: `Bearer ${await token()}` });
  if (!(await db.listCollections({ name: 'fhir_Patient' }).hasNext())) {
    const files = (await readdir(values.data!)).filter((f) => f.endsWith('.json')).sort().slice(0, Number(values.patients)).map((f) => join(values.data!, f));
    const seeded = await importFiles({ baseUrl: base, paths: files, headers, concurrency: 2 });
    console.log(`seeded ${seeded.resources} resources from ${files.length} bundles in ${seeded.seconds.toFixed(1)} s${seeded.failures.length ? ` (${seeded.failures.length} failed files)` : ''}`);
  }

  // 1. $export through the server: kick-off to manifest, then the download of every file.
  const started = Date.now();
  const kick = await fetch(`${base}/$export`, { headers: { ...(await headers()), accept: 'application/fhir+json', prefer: 'respond-async' } });
  if (kick.status !== 202) throw new Error(`kick-off: ${kick.status} ${await kick.text()}`);
  const status = kick.headers.get('content-location')!;
  let manifest: { output: { type: string; url: string; count: number }[] } | undefined;
  while (!manifest) {
    const res = await fetch(status, { headers: await headers() });
    if (res.status === 200) manifest = (await res.json()) as typeof manifest;
    else if (res.status === 202) await new Promise((r) => setTimeout(r, 200));
    else throw new Error(`status: ${res.status} ${await res.text()}`);
  }
  const exportSeconds = (Date.now() - started) / 1000;
  let bytes = 0;
  for (const o of manifest!.output) bytes += (await (await fetch(o.url, { headers: await headers() })).arrayBuffer()).byteLength;
  const totalSeconds = (Date.now() - started) / 1000;
  const resources = manifest!.output.reduce((n, o) => n + o.count, 0);
  await fetch(status, { method: 'DELETE', headers: await headers() });

  // 2. Baseline: the same current documents read with the driver and written to NDJSON files.
  const t0 = Date.now();
  let baseline = 0;
  const types = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).filter((n) => n.startsWith('fhir_') && !n.endsWith('_history')).sort();
  for (const name of types) {
    const file = createWriteStream(join(out, `${name.slice(5)}.ndjson`));
    for await (const doc of db.collection(name).find({ del: false }, { projection: { json: 1 } }).sort({ _id: 1 })) {
      if (!file.write(`${doc.json}\n`)) await once(file, 'drain');
      baseline++;
    }
    file.end();
    await once(file, 'finish');
  }
  const baselineSeconds = (Date.now() - t0) / 1000;

  const row = (label: string, n: number, s: number) => console.log(`${label.padEnd(48)} ${String(n).padStart(8)} resources in ${s.toFixed(1).padStart(6)} s = ${(n / s).toFixed(0).padStart(7)} resources/s`);
  row('$export (kick-off to manifest)', resources, exportSeconds);
  row(`$export + download (${(bytes / 1e6).toFixed(1)} MB, ${manifest!.output.length} files)`, resources, totalSeconds);
  row('driver read + NDJSON write (baseline)', baseline, baselineSeconds);
} finally {
  await server.stop();
  if (!values.keep && !values.db) await db.dropDatabase().catch(() => undefined);
  await client.close();
  await rm(out, { recursive: true, force: true });
}
