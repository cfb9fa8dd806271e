/**
 * Subscription benchmark: what the outbox costs writes, and how fast notifications reach a receiver.
 *   MONGODB_URI=mongodb://127.0.0.1:27017/ npm run bench-subscriptions -- [--writes 1000] [--concurrency 20] [--subscriptions 5]
 * Phase 1 creates Observations with no subscription watching them (no outbox entries: see watched-types.ts);
 * phase 2 the same with `--subscriptions` subscriptions matching every one (outbox entry per write, fan-out,
 * one rest-hook per subscription and event to a local receiver). Prints writes/s for both, and notifications/s
 * from the first write of phase 2 until the receiver has every event.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { percentiles, runConcurrent } from './lib/stats.js';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';

const { values } = parseArgs({ options: { writes: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '20' }, subscriptions: { type: 'string', default: '5' } } });
if (!process.env.MONGODB_URI) {
  console.error('Set MONGODB_URI: the benchmark measures a real engine, never an embedded one.');
  process.exit(2);
}
const WRITES = Number(values.writes);
const CONCURRENCY = Number(values.concurrency);
const SUBS = Number(values.subscriptions);
const dbName = `bench_subs_${process.pid}`;

let received = 0;
const receiver = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    received++;
    res.writeHead(200).end();
  });
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

const server = await startServerProcess({ MONGODB_DB: dbName, LOG_LEVEL: 'silent', JOBS_ENABLED: 'false', SUBSCRIPTION_ENDPOINT_ALLOWLIST: '127.0.0.1', SUBSCRIPTION_POLL_MS: '200', SUBSCRIPTION_PROPAGATION_MS: '2000' });
const client = await new MongoClient(process.env.MONGODB_URI).connect();
const db = client.db(dbName);
try {
  const token = await serviceTokenSource(db, server.url);
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}/fhir${path}`, { method, headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${await token()}` }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as any };
  };
  const obs = (code: string, i: number) => ({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code }] }, subject: { reference: `Patient/p${i % 50}` }, valueInteger: i });
  const phase = async (label: string, code: string) => {
    const started = Date.now();
    const ms = await runConcurrent(WRITES, CONCURRENCY, async (i) => {
      const r = await call('POST', '/Observation', obs(code, i));
      if (r.status !== 201) throw new Error(`write failed: ${r.status}`);
    });
    const seconds = (Date.now() - started) / 1000;
    const p = percentiles(ms);
    console.log(`${label.padEnd(40)} ${(WRITES / seconds).toFixed(1).padStart(7)} writes/s  p50 ${p.p50.toFixed(0).padStart(4)} ms  p95 ${p.p95.toFixed(0).padStart(4)} ms`);
    return started;
  };
  // Warm-up: the first writes create the collection and its indexes.
  await runConcurrent(50, CONCURRENCY, async (i) => void (await call('POST', '/Observation', obs('warm-up', i))));
  await phase('writes, no subscription watching', 'unwatched');
  let since = 0;
  for (let i = 0; i < SUBS; i++) {
    const r = await call('POST', '/Subscription', { resourceType: 'Subscription', status: 'requested', reason: 'bench', criteria: 'Observation?code=http://loinc.org|watched', channel: { type: 'rest-hook', endpoint: `${hook}${i}` } });
    if (r.status !== 201) throw new Error(`subscription failed: ${r.status} ${JSON.stringify(r.body)}`);
    const owner = r.body.extension.find((e: any) => e.url.endsWith('/subscription-owner'));
    since = Math.max(since, Date.parse(JSON.parse(owner.valueString).since));
  }
  while (Date.now() <= since) await new Promise((r) => setTimeout(r, 50)); // the subscriptions take effect
  const started = await phase(`writes, ${SUBS} subscriptions matching each`, 'watched');
  const expected = WRITES * SUBS;
  const deadline = Date.now() + 30 * 60_000;
  while (received < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const seconds = (Date.now() - started) / 1000;
  console.log(`${'notifications delivered'.padEnd(40)} ${received}/${expected} in ${seconds.toFixed(1)} s = ${(received / seconds).toFixed(1)} notifications/s`);
} finally {
  await server.stop();
  await db.dropDatabase().catch(() => undefined);
  await client.close();
  receiver.close();
}
