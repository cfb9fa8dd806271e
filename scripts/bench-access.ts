/**
 * Access-check benchmark: what a practitioner's `user/` token costs on reads and searches. Loads one
 * practitioner with N patients booked with them (one Appointment each), signs the practitioner in through the
 * sign-in and consent pages, then times the same requests as that practitioner, with a system token (no
 * patient restriction) and with the driver alone:
 *   read-patient    GET Patient/<one of theirs>
 *   appointments    GET Appointment?patient=Patient/<one of theirs>
 *   list-patients   GET Patient?_count=20          (needs every linked patient, as any unpinned search does)
 *   MONGODB_URI=mongodb://127.0.0.1:27017/ npm run bench-access -- [--patients 2000] [--requests 200] [--concurrency 1,8] [--settle 0]
 * --settle S waits S seconds after loading: a search over all of an account's patients looks again at the
 * relations written in the last 10 s (src/auth/access-policy.ts), which right after the load are all of them.
 * The database is a fresh bench_access_<pid>, dropped at the end.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { MongoClient, type Db } from 'mongodb';
import { percentiles, runConcurrent } from './lib/stats.js';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';
import { signIn } from './lib/browser-login.js';
import { SEP } from '../src/fhir/search/index-entry.js';

const { values } = parseArgs({
  options: { patients: { type: 'string', default: '2000' }, requests: { type: 'string', default: '200' }, concurrency: { type: 'string', default: '1,8' }, settle: { type: 'string', default: '0' } },
});
if (!process.env.MONGODB_URI) {
  console.error('Set MONGODB_URI: the benchmark measures a real engine, never an embedded one.');
  process.exit(2);
}
const PATIENTS = Number(values.patients);
const REQUESTS = Number(values.requests);
const CONCURRENCY = values.concurrency.split(',').map(Number);
if (![PATIENTS, REQUESTS, ...CONCURRENCY].every((n) => Number.isInteger(n) && n > 0)) {
  console.error('--patients, --requests and --concurrency take positive integers');
  process.exit(2);
}
const dbName = `bench_access_${process.pid}`;
const PASSWORD = 'Bench-Access-2026!';
const REDIRECT = 'http://bench.example/cb';

const server = await startServerProcess({ MONGODB_DB: dbName, LOG_LEVEL: 'silent', JOBS_ENABLED: 'false' });
const client = await new MongoClient(process.env.MONGODB_URI).connect();
const db = client.db(dbName);
try {
  const system = await serviceTokenSource(db, server.url);
  const fhir = async (method: string, path: string, token: string, body?: unknown) => {
    const res = await fetch(`${server.url}/fhir/${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/fhir+json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  // People: a system administrator (scripts/create-admin), who creates the practitioner's account over the API.
  await promisify(execFile)(process.execPath, ['--import', 'tsx', new URL('./create-admin.ts', import.meta.url).pathname, '--email', 'root@bench.example'], {
    env: { ...process.env, MONGODB_DB: dbName, ADMIN_PASSWORD: PASSWORD, LOG_LEVEL: 'silent' },
  });
  const clientId = await publicClient(db);
  const issuer = `${server.url}/auth`;
  const login = (email: string, scope: string) => signIn({ issuer, fhirBase: `${server.url}/fhir`, clientId, redirectUri: REDIRECT, email, password: PASSWORD, scope });
  const admin = await login('root@bench.example', 'openid fhirUser user/*.cruds');
  const created = await fetch(`${server.url}/auth/admin/accounts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin.access_token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'practitioner', email: 'busy@bench.example', password: PASSWORD, givenName: 'Busy', familyName: 'Doctor' }),
  });
  const practitioner = ((await created.json()) as { fhirUser: string }).fhirUser;
  if (created.status !== 201 || !practitioner) throw new Error(`could not create the practitioner account (${created.status})`);

  // Data: N patients, each with one Appointment with the practitioner, in transactions of 250 patients.
  const started = performance.now();
  const ids: string[] = [];
  for (let from = 0; from < PATIENTS; from += 250) {
    const entry = Array.from({ length: Math.min(250, PATIENTS - from) }, (_, i) => {
      const url = `urn:uuid:${randomUUID()}`;
      const start = new Date(Date.UTC(2027, 0, 4, 8) + (from + i) * 1800_000);
      return [
        { fullUrl: url, resource: { resourceType: 'Patient', name: [{ family: `Patient${from + i}`, given: ['Bench'] }] }, request: { method: 'POST', url: 'Patient' } },
        {
          resource: {
            resourceType: 'Appointment', status: 'booked', start: start.toISOString(), end: new Date(start.getTime() + 1800_000).toISOString(),
            participant: [{ actor: { reference: url }, status: 'accepted' }, { actor: { reference: practitioner }, status: 'accepted' }],
          },
          request: { method: 'POST', url: 'Appointment' },
        },
      ];
    }).flat();
    const res = await fhir('POST', '', await system(), { resourceType: 'Bundle', type: 'transaction', entry });
    if (res.status !== 200) throw new Error(`load failed (${res.status}): ${JSON.stringify(res.body).slice(0, 300)}`);
    for (const e of res.body.entry as { response: { location: string } }[]) {
      const id = /(?:^|\/)Patient\/([^/]+)/.exec(e.response.location)?.[1];
      if (id) ids.push(id);
    }
  }
  if (ids.length !== PATIENTS) throw new Error(`expected ${PATIENTS} patient ids from the transaction responses, got ${ids.length}`);
  console.log(`server ${server.url}  database ${dbName}  node ${process.version}`);
  console.log(`loaded ${PATIENTS} patients with one appointment each with ${practitioner} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const settle = Number(values.settle);
  if (!(settle >= 0)) throw new Error('--settle takes a number of seconds');
  if (settle) await new Promise((resolve) => setTimeout(resolve, settle * 1000));
  const doctor = (await login('busy@bench.example', 'openid fhirUser user/*.cruds')).access_token;

  const pick = (i: number) => ids[(i * 7919) % ids.length]!;
  // Every patient read once first, so that no row pays for filling the resource cache for the rows after it.
  await runConcurrent(ids.length, 8, async (i) => {
    if ((await fhir('GET', `Patient/${ids[i]}`, await system())).status !== 200) throw new Error(`could not read Patient/${ids[i]}`);
  });
  const queries: { name: string; path: (i: number) => string; driver: (i: number) => Promise<unknown>; requests?: number }[] = [
    { name: 'read-patient', path: (i) => `Patient/${pick(i)}`, driver: (i) => db.collection<any>('fhir_Patient').findOne({ _id: `Patient/${pick(i)}` }).then((d) => JSON.parse(d.json)) },
    {
      name: 'appointments',
      path: (i) => `Appointment?patient=Patient/${pick(i)}`,
      driver: (i) => db.collection<any>('fhir_Appointment').find({ tk: `patient${SEP}Patient/${pick(i)}`, del: false }).limit(20).toArray().then((ds) => ds.map((d) => JSON.parse(d.json))),
    },
    // Seconds per request on FerretDB (every linked patient is listed, then looked up): a tenth of the requests.
    { name: 'list-patients', requests: Math.max(10, Math.round(REQUESTS / 10)), path: () => 'Patient?_count=20', driver: () => db.collection<any>('fhir_Patient').find({ del: false }).limit(20).toArray().then((ds) => ds.map((d) => JSON.parse(d.json))) },
  ];
  console.log(`\n${REQUESTS} requests per row (list-patients: a tenth); "practitioner" is the busy practitioner's user/*.cruds token, "system" a system/*.cruds token`);
  console.log('query           |   c | path         |   req/s |  p50 ms |  p95 ms |  p99 ms | non-200');
  for (const c of CONCURRENCY) {
    for (const q of queries) {
      const row = async (label: string, call: (i: number) => Promise<boolean>) => {
        let bad = 0;
        for (let i = 0; i < 3; i++) await call(i); // warm-up
        const t = performance.now();
        const n = q.requests ?? REQUESTS;
        const ms = await runConcurrent(n, c, async (i) => {
          if (!(await call(i))) bad++;
        });
        const seconds = (performance.now() - t) / 1000;
        const p = percentiles(ms);
        console.log(`${q.name.padEnd(15)} | ${String(c).padStart(3)} | ${label.padEnd(12)} | ${(n / seconds).toFixed(1).padStart(7)} | ${p.p50.toFixed(1).padStart(7)} | ${p.p95.toFixed(1).padStart(7)} | ${p.p99.toFixed(1).padStart(7)} | ${bad}`);
      };
      await row('practitioner', async (i) => (await fhir('GET', q.path(i), doctor)).status === 200);
      await row('system', async (i) => (await fhir('GET', q.path(i), await system())).status === 200);
      await row('driver', async (i) => (await q.driver(i), true));
    }
  }
} finally {
  await server.stop();
  await db.dropDatabase().catch(() => undefined);
  await client.close();
}

/** A public SMART client for the sign-ins, written where `npm run register-client` writes clients. */
async function publicClient(database: Db): Promise<string> {
  const id = `bench-${randomUUID()}`;
  const metadata = {
    client_id: id, client_name: 'bench-access', allowed_scopes: 'openid fhirUser user/*.cruds', redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none',
  };
  await database.collection<{ _id: string }>('oidc_Client').replaceOne({ _id: id }, { payload: JSON.stringify(metadata) }, { upsert: true });
  return id;
}
