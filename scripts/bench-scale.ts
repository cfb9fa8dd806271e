/**
 * Throughput with 1 and with 2 server processes on one database and Redis, the same workload each time:
 * N Patient creates, then reads by id, then identifier searches, with K concurrent clients, through a
 * round-robin proxy for 2 processes (the proxy's address is the servers' BASE_URL, as a load balancer's is).
 *   MONGODB_URI=… REDIS_URL=… npm run bench-scale -- [--n 500] [--clients 8] [--processes 1,2]
 */
import { parseArgs } from 'node:util';
import { createServer } from 'node:net';
import { MongoClient } from 'mongodb';
import { percentiles, runConcurrent } from './lib/stats.js';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';
import { startRoundRobinProxy } from './lib/round-robin-proxy.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '500' }, clients: { type: 'string', default: '8' }, processes: { type: 'string', default: '1,2' } } });
if (!process.env.MONGODB_URI) {
  console.error('Set MONGODB_URI (and REDIS_URL): the benchmark measures a real engine.');
  process.exit(2);
}
const N = Number(values.n);
const K = Number(values.clients);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function measure(processes: number): Promise<void> {
  const dbName = `bench_scale_${processes}_${Date.now()}`;
  const proxyPort = await freePort();
  const publicUrl = `http://127.0.0.1:${proxyPort}`;
  const env = { MONGODB_DB: dbName, LOG_LEVEL: 'warn', BASE_URL: publicUrl, RATE_LIMIT_ENABLED: 'false', NODE_ENV: 'production' };
  const servers = [];
  for (let i = 0; i < processes; i++) servers.push(await startServerProcess(env));
  const proxy = await startRoundRobinProxy(servers.map((s) => new URL(s.url)), proxyPort);
  const mongo = await MongoClient.connect(process.env.MONGODB_URI!);
  try {
    const token = await serviceTokenSource(mongo.db(dbName), publicUrl);
    const headers = async () => ({ authorization: `Bearer ${await token()}`, 'content-type': 'application/fhir+json' });
    const ids: string[] = [];
    const row = async (op: string, count: number, task: (i: number) => Promise<void>) => {
      const started = performance.now();
      const ms = await runConcurrent(count, K, task);
      const seconds = (performance.now() - started) / 1000;
      console.log(JSON.stringify({ processes, op, count, clients: K, reqPerSec: Math.round(count / seconds), ...percentiles(ms) }));
    };
    await row('create Patient', N, async (i) => {
      const res = await fetch(`${publicUrl}/fhir/Patient`, { method: 'POST', headers: await headers(), body: JSON.stringify({ resourceType: 'Patient', identifier: [{ system: 'urn:bench', value: `p${i}` }], name: [{ family: `Scale${i % 50}` }] }) });
      if (res.status !== 201) throw new Error(`create: ${res.status}`);
      ids[i] = ((await res.json()) as { id: string }).id;
    });
    await row('read Patient', N * 3, async (i) => {
      const res = await fetch(`${publicUrl}/fhir/Patient/${ids[i % N]}`, { headers: await headers() });
      if (res.status !== 200) throw new Error(`read: ${res.status}`);
      await res.arrayBuffer();
    });
    await row('Patient?identifier=', N, async (i) => {
      const res = await fetch(`${publicUrl}/fhir/Patient?identifier=urn:bench|p${i}`, { headers: await headers() });
      if (res.status !== 200) throw new Error(`search: ${res.status}`);
      await res.arrayBuffer();
    });
  } finally {
    await proxy.close();
    for (const s of servers) await s.stop();
    await mongo.db(dbName).dropDatabase().catch(() => undefined);
    await mongo.close();
  }
}

for (const p of values.processes!.split(',').map(Number)) await measure(p);
