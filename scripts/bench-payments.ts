/**
 * Payments benchmark: hold → pay → book through several server processes on one database, against stripe-mock.
 *   MONGODB_URI=… STRIPE_API_BASE=http://127.0.0.1:12111 npm run bench-payments -- \
 *     [--servers 3] [--patients 200] [--slots 20] [--concurrency 20] [--hold-seconds 4] [--slow 0.2]
 * Every patient holds a free slot (trying others when theirs is taken), starts `Invoice/$pay`, and its payment
 * succeeds by a signed `payment_intent.succeeded` webhook sent to a random process; a share of them (`--slow`)
 * pays only after their hold lapsed (late payments, which must be refunded when the slot was released). Prints
 * bookings, successful payments, refunds, late payments, double bookings (slots with more than one active
 * appointment, must be 0) and throughput; exits 1 when bookings ≠ payments kept or refunds ≠ late payments.
 */
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import Stripe from 'stripe';
import { percentiles, runConcurrent } from './lib/stats.js';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';

const { values } = parseArgs({
  options: {
    servers: { type: 'string', default: '3' }, patients: { type: 'string', default: '200' }, slots: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '20' }, 'hold-seconds': { type: 'string', default: '4' }, slow: { type: 'string', default: '0.2' },
  },
});
if (!process.env.MONGODB_URI || !process.env.STRIPE_API_BASE) {
  console.error('Set MONGODB_URI (a real engine) and STRIPE_API_BASE (stripe-mock: scripts/ci/stripe-mock.sh start).');
  process.exit(2);
}
const SERVERS = Number(values.servers);
const PATIENTS = Number(values.patients);
const SLOTS = Number(values.slots);
const CONCURRENCY = Number(values.concurrency);
const HOLD_SECONDS = Number(values['hold-seconds']);
const SLOW = Number(values.slow);
const SECRET = 'whsec_bench_payments';
const dbName = `bench_payments_${process.pid}`;
const stripe = new Stripe('sk_test_bench');

// One after the other: processes starting at the same moment on a fresh database can collide on its first
// writes (seen: a duplicate key in subscription_outbox while each publishes the OperationDefinitions).
const servers: Awaited<ReturnType<typeof startServerProcess>>[] = [];
for (let i = 0; i < SERVERS; i++) {
  servers.push(await startServerProcess({
    MONGODB_DB: dbName, LOG_LEVEL: 'silent', JOBS_ENABLED: 'false', HOLD_SECONDS: String(HOLD_SECONDS),
    STRIPE_SECRET_KEY: 'sk_test_bench', STRIPE_WEBHOOK_SECRET: SECRET, STRIPE_API_BASE: process.env.STRIPE_API_BASE!,
  }));
}
const client = await new MongoClient(process.env.MONGODB_URI).connect();
const db = client.db(dbName);
try {
  const tokens = await Promise.all(servers.map((s) => serviceTokenSource(db, s.url)));
  const call = async (i: number, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${servers[i % SERVERS]!.url}/fhir${path}`, {
      method, headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${await tokens[i % SERVERS]!()}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const webhook = async (i: number, payload: string) => {
    const res = await fetch(`${servers[i % SERVERS]!.url}/webhooks/stripe`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET }) }, body: payload,
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const start = Date.now() + 2 * 86400_000;
  const slotIds = Array.from({ length: SLOTS }, (_, i) => `ps${i}`);
  const entry: unknown[] = [
    { resource: { resourceType: 'Organization', id: 'bench-org', name: 'Bench clinic' }, request: { method: 'PUT', url: 'Organization/bench-org' } },
    { resource: { resourceType: 'PractitionerRole', id: 'bench-role', active: true, organization: { reference: 'Organization/bench-org' }, extension: [{ url: 'http://medivoy.example/fhir/StructureDefinition/consultation-fee', valueMoney: { value: 80, currency: 'EUR' } }] }, request: { method: 'PUT', url: 'PractitionerRole/bench-role' } },
    { resource: { resourceType: 'Schedule', id: 'bench-schedule', actor: [{ reference: 'PractitionerRole/bench-role' }] }, request: { method: 'PUT', url: 'Schedule/bench-schedule' } },
    ...slotIds.map((id, i) => ({
      resource: { resourceType: 'Slot', id, schedule: { reference: 'Schedule/bench-schedule' }, status: 'free', start: new Date(start + i * 1800_000).toISOString(), end: new Date(start + i * 1800_000 + 1800_000).toISOString() },
      request: { method: 'PUT', url: `Slot/${id}` },
    })),
    ...Array.from({ length: PATIENTS }, (_, i) => ({ resource: { resourceType: 'Patient', id: `pp${i}`, name: [{ family: `Payer${i}` }] }, request: { method: 'PUT', url: `Patient/pp${i}` } })),
  ];
  const setup = await call(0, 'POST', '', { resourceType: 'Bundle', type: 'transaction', entry });
  if (setup.status !== 200) throw new Error(`setup failed: ${setup.status} ${JSON.stringify(setup.body).slice(0, 500)}`);

  const outcome = { lapsedBeforePaying: 0, holds: 0, holdRefused: 0, payStarted: 0, succeededEvents: 0, booked: 0, late: 0, lateRefunded: 0, errors: 0 };
  const errorSamples: string[] = [];
  const param = (r: any, n: string) => r.body.parameter?.find((p: any) => p.name === n);
  console.log(`servers: ${SERVERS} processes on one database (${dbName}); ${PATIENTS} patients, ${SLOTS} slots, hold ${HOLD_SECONDS} s, ${Math.round(SLOW * 100)}% pay late; node ${process.version}`);
  const t = performance.now();
  const ms = await runConcurrent(PATIENTS, CONCURRENCY, async (i) => {
    // Hold: a free slot, trying others while theirs are taken (at most as many tries as there are slots).
    let held: any;
    for (let k = 0; k < SLOTS && !held; k++) {
      const r = await call(i + k, 'POST', '/Appointment/$hold', { resourceType: 'Parameters', parameter: [{ name: 'slot', valueString: `Slot/${slotIds[(i + k) % SLOTS]}` }, { name: 'patient', valueString: `Patient/pp${i}` }] });
      if (r.status === 201) held = r.body;
      else if (r.status === 409) outcome.holdRefused++;
      else { outcome.errors++; errorSamples.push(`hold ${r.status}`); return; }
    }
    if (!held) return;
    outcome.holds++;
    const inv = await call(i, 'GET', `/Invoice?subject=Patient/pp${i}&_count=50`);
    const invoice = inv.body.entry?.map((e: any) => e.resource).find((x: any) => x.extension?.some((e: any) => e.valueReference?.reference === `Appointment/${held.id}`));
    if (!invoice) { outcome.errors++; errorSamples.push('no invoice for a hold'); return; }
    const pay = await call(i + 1, 'POST', `/Invoice/${invoice.id}/$pay`, { resourceType: 'Parameters', parameter: [] });
    if (pay.status === 409) { outcome.lapsedBeforePaying++; return; } // the hold lapsed before the patient paid: its invoice is cancelled
    if (pay.status !== 200) { outcome.errors++; errorSamples.push(`pay ${pay.status} ${JSON.stringify(pay.body).slice(0, 200)}`); return; }
    outcome.payStarted++;
    const late = Math.random() < SLOW;
    if (late) await new Promise((r) => setTimeout(r, (HOLD_SECONDS + 1.5) * 1000));
    const payload = JSON.stringify({
      id: `evt_bench_${i}`, object: 'event', type: 'payment_intent.succeeded', created: Math.floor(Date.now() / 1000), livemode: false,
      data: { object: { id: param(pay, 'paymentIntent').valueString, object: 'payment_intent', amount: param(pay, 'amount').valueInteger, amount_received: param(pay, 'amount').valueInteger, currency: 'eur', metadata: { invoice: invoice.id }, payment_method_types: ['card'], status: 'succeeded' } },
    });
    const w = await webhook(i + 2, payload);
    if (w.status !== 200) { outcome.errors++; errorSamples.push(`webhook ${w.status} ${JSON.stringify(w.body).slice(0, 200)}`); return; }
    outcome.succeededEvents++;
    if (w.body.booked) outcome.booked++;
    if (w.body.latePayment) outcome.lateRefunded++;
    if (late) outcome.late++;
    // A duplicate delivery of the same event: must change nothing.
    await webhook(i + 3, payload);
  });
  const seconds = (performance.now() - t) / 1000;

  // Counted in the database.
  const active = (await db.collection<{ json: string; del: boolean }>('fhir_Appointment').find({ del: false }).toArray()).map((a) => JSON.parse(a.json) as { id: string; status: string; slot?: { reference: string }[] })
    .filter((a) => ['proposed', 'pending', 'booked', 'arrived'].includes(a.status));
  const perSlot = new Map<string, number>();
  for (const a of active) for (const s of a.slot ?? []) perSlot.set(s.reference, (perSlot.get(s.reference) ?? 0) + 1);
  const doubles = [...perSlot.values()].filter((n) => n > 1).length;
  const bookings = active.filter((a) => a.status === 'pending' || a.status === 'booked').length;
  const prs = (await db.collection<{ json: string; del: boolean }>('fhir_PaymentReconciliation').find({ del: false }).toArray()).map((d) => JSON.parse(d.json) as { paymentAmount: { value: number } });
  const payments = prs.filter((p) => p.paymentAmount.value > 0).length;
  const refunds = prs.filter((p) => p.paymentAmount.value < 0).length;
  // Diagnostics: bookings whose invoice is not simply paid.
  const invoices = (await db.collection<{ json: string; del: boolean }>('fhir_Invoice').find({ del: false }).toArray()).map((d) => JSON.parse(d.json) as any);
  const byAppointment = new Map(invoices.map((inv) => [inv.extension?.find((e: any) => e.url.endsWith('/invoice-appointment'))?.valueReference?.reference, inv]));
  const odd = active.filter((a) => a.status === 'pending' && (byAppointment.get(`Appointment/${a.id}`)?.status !== 'balanced' || byAppointment.get(`Appointment/${a.id}`)?.extension?.some((e: any) => e.url.endsWith('/invoice-refunded'))));
  for (const a of odd.slice(0, 3)) console.log(`booking without a kept payment: Appointment/${a.id}: invoice ${JSON.stringify(byAppointment.get(`Appointment/${a.id}`)?.status)} notes ${JSON.stringify(byAppointment.get(`Appointment/${a.id}`)?.note?.map((n: any) => n.text))}`);
  const p = percentiles(ms);
  console.log(`flows: ${PATIENTS} in ${seconds.toFixed(1)} s = ${(PATIENTS / seconds).toFixed(1)} patients/s (p50 ${p.p50.toFixed(0)} ms, p95 ${p.p95.toFixed(0)} ms per patient, late payers wait ${HOLD_SECONDS + 1.5} s)`);
  console.log(`holds: ${outcome.holds} (refused while taken: ${outcome.holdRefused}); $pay started: ${outcome.payStarted} (hold lapsed before $pay: ${outcome.lapsedBeforePaying}); payment events: ${outcome.succeededEvents} (+ as many duplicates), answered booked: ${outcome.booked}`);
  console.log(`bookings: ${bookings}; successful payments: ${payments}; refunds: ${refunds}; late payments (refunded): ${outcome.lateRefunded} (slow payers: ${outcome.late}); double bookings: ${doubles}; errors: ${outcome.errors}`);
  if (errorSamples.length) console.log(`error samples: ${errorSamples.slice(0, 5).join(' | ')}`);
  const ok = doubles === 0 && bookings === payments - refunds && refunds === outcome.lateRefunded && outcome.errors === 0;
  console.log(ok ? 'OK: bookings = payments kept, refunds = late payments, no double booking' : 'FAILED: the invariants do not hold');
  if (!ok) process.exitCode = 1;
} finally {
  await Promise.all(servers.map((s) => s.stop()));
  if (process.env.BENCH_KEEP_DB) console.log(`kept database ${dbName}`);
  else await db.dropDatabase();
  await client.close();
}
