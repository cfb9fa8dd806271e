/**
 * Booking benchmark: several server processes on one database, many concurrent `Appointment/$book`
 * requests competing for few slots, then uncontended bookings of distinct slots.
 *   MONGODB_URI=mongodb://127.0.0.1:27017/ npm run bench-booking -- [--servers 3] [--slots 20] [--requests 200] [--concurrency 50]
 * Prints requests/s, p50/p95 latency, how many succeeded, and the double-booking count (must be 0):
 * slots linked to more than one active appointment.
 */
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { percentiles, runConcurrent } from './lib/stats.js';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';

const { values } = parseArgs({
  options: { servers: { type: 'string', default: '3' }, slots: { type: 'string', default: '20' }, requests: { type: 'string', default: '200' }, concurrency: { type: 'string', default: '50' } },
});
if (!process.env.MONGODB_URI) {
  console.error('Set MONGODB_URI: the benchmark measures a real engine, never an embedded one.');
  process.exit(2);
}
const SERVERS = Number(values.servers);
const SLOTS = Number(values.slots);
const REQUESTS = Number(values.requests);
const CONCURRENCY = Number(values.concurrency);
const dbName = `bench_booking_${process.pid}`;

const servers = await Promise.all(Array.from({ length: SERVERS }, () => startServerProcess({ MONGODB_DB: dbName, LOG_LEVEL: 'silent', JOBS_ENABLED: 'false' })));
const client = await new MongoClient(process.env.MONGODB_URI).connect();
const db = client.db(dbName);
try {
  const tokens = await Promise.all(servers.map((s) => serviceTokenSource(db, s.url)));
  const call = async (i: number, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${servers[i % SERVERS]!.url}/fhir${path}`, {
      method,
      headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${await tokens[i % SERVERS]!()}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const start = Date.now() + 2 * 86400_000;
  const slotIds = Array.from({ length: SLOTS + REQUESTS }, (_, i) => `b${i}`);
  const entry: unknown[] = [
    { resource: { resourceType: 'PractitionerRole', id: 'bench-role', active: true }, request: { method: 'PUT', url: 'PractitionerRole/bench-role' } },
    { resource: { resourceType: 'Schedule', id: 'bench-schedule', actor: [{ reference: 'PractitionerRole/bench-role' }] }, request: { method: 'PUT', url: 'Schedule/bench-schedule' } },
    ...slotIds.map((id, i) => ({
      resource: { resourceType: 'Slot', id, schedule: { reference: 'Schedule/bench-schedule' }, status: 'free', start: new Date(start + i * 1800_000).toISOString(), end: new Date(start + i * 1800_000 + 1800_000).toISOString() },
      request: { method: 'PUT', url: `Slot/${id}` },
    })),
    ...Array.from({ length: REQUESTS }, (_, i) => ({ resource: { resourceType: 'Patient', id: `bp${i}`, name: [{ family: `Bench${i}` }] }, request: { method: 'PUT', url: `Patient/bp${i}` } })),
  ];
  const setup = await call(0, 'POST', '', { resourceType: 'Bundle', type: 'transaction', entry });
  if (setup.status !== 200) throw new Error(`setup failed: ${setup.status} ${JSON.stringify(setup.body).slice(0, 500)}`);
  const book = (i: number, slot: string) => call(i, 'POST', '/Appointment/$book', { resourceType: 'Parameters', parameter: [{ name: 'slot', valueString: `Slot/${slot}` }, { name: 'patient', valueString: `Patient/bp${i}` }] });

  const report = (label: string, seconds: number, ms: number[], statuses: number[]) => {
    const p = percentiles(ms);
    const count = (s: number) => statuses.filter((x) => x === s).length;
    console.log(`${label.padEnd(34)} ${(statuses.length / seconds).toFixed(1).padStart(7)} req/s  p50 ${p.p50.toFixed(0).padStart(5)} ms  p95 ${p.p95.toFixed(0).padStart(5)} ms  201: ${count(201)}  409: ${count(409)}  other: ${statuses.length - count(201) - count(409)}`);
  };

  console.log(`servers: ${SERVERS} processes on one database (${dbName}); node ${process.version}`);
  // Contended: REQUESTS bookings for SLOTS slots, all at once.
  let statuses: number[] = [];
  let t = performance.now();
  let ms = await runConcurrent(REQUESTS, CONCURRENCY, async (i) => {
    const r = await book(i, slotIds[i % SLOTS]!);
    statuses[i] = r.status;
  });
  report(`contended (${REQUESTS} for ${SLOTS} slots, c=${CONCURRENCY})`, (performance.now() - t) / 1000, ms, statuses);

  // Uncontended: every request its own slot (the patients of the contended round that got nothing).
  const losers = statuses.map((s, i) => (s === 201 ? -1 : i)).filter((i) => i >= 0);
  statuses = [];
  t = performance.now();
  ms = await runConcurrent(losers.length, Math.min(CONCURRENCY, 8), async (k) => {
    const i = losers[k]!;
    const r = await book(i, slotIds[SLOTS + k]!);
    statuses[k] = r.status;
  });
  report(`uncontended (distinct slots, c=${Math.min(CONCURRENCY, 8)})`, (performance.now() - t) / 1000, ms, statuses);

  // Double bookings: slots linked to more than one active appointment, counted in the database.
  const appointments = await db.collection<{ json: string; del: boolean }>('fhir_Appointment').find({ del: false }).toArray();
  const perSlot = new Map<string, number>();
  for (const a of appointments) {
    const r = JSON.parse(a.json) as { status: string; slot?: { reference: string }[] };
    if (!['proposed', 'pending', 'booked', 'arrived'].includes(r.status)) continue;
    for (const s of r.slot ?? []) perSlot.set(s.reference, (perSlot.get(s.reference) ?? 0) + 1);
  }
  const doubles = [...perSlot.values()].filter((n) => n > 1).length;
  console.log(`active appointments: ${appointments.length}; slots with more than one active appointment (double bookings): ${doubles}`);
  if (doubles) process.exitCode = 1;
} finally {
  await Promise.all(servers.map((s) => s.stop()));
  await db.dropDatabase();
  await client.close();
}
