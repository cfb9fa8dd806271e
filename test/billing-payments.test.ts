/**
 * Payments through HTTP against FerretDB, Redis and stripe-mock (STRIPE_API_BASE; scripts/ci/stripe-mock.sh):
 * Invoice/$pay (one PaymentIntent per attempt), the signed webhook (each event once, bad signatures refused with
 * nothing stored), hold → pay → book as one flow (success before and after the hold lapsed, failure, duplicate and
 * out-of-order events, two patients racing for one slot), refunds by the cancellation policy and by staff, and bad
 * input answered with OperationOutcomes.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import Stripe from 'stripe';
import { http, startTestServer, type TestServer } from './support/server.js';
import { startSmtp } from './support/smtp.js';
import { userToken } from './support/browser.js';
import { clinic, ext, invoiceOf, minor, params, PASSWORD, registerPatient, SD } from './support/billing.js';

const STRIPE_API_BASE = process.env.STRIPE_API_BASE;
if (!STRIPE_API_BASE && process.env.CI === 'true') {
  throw new Error('STRIPE_API_BASE is not set: CI must start stripe-mock (scripts/ci/stripe-mock.sh start) and export it');
}
const WEBHOOK_SECRET = 'whsec_medivoy_test_secret';
const stripe = new Stripe('sk_test_medivoy');
const run = STRIPE_API_BASE ? describe : describe.skip;
if (!STRIPE_API_BASE) console.warn('billing-payments: STRIPE_API_BASE is not set; start stripe-mock (scripts/ci/stripe-mock.sh start) to run these tests');

let srv: TestServer;
let smtp: Awaited<ReturnType<typeof startSmtp>>;
let c: Awaited<ReturnType<typeof clinic>>;
let strict: Awaited<ReturnType<typeof clinic>>;
let ann: string;
let bob: string;
let annToken: string;
let bobToken: string;
let slot = 0;
const nextSlot = () => c.slots[slot++]!;

const op = (path: string, p: Record<string, unknown> = {}, token?: string) => http('POST', `${srv.base}/${path}`, { body: params(p), ...(token ? { token } : {}) });
let evtSeq = 0;
function event(type: string, pi: { id: string; amount: number; invoice?: string; currency?: string; error?: string }, id = `evt_test_${Date.now()}_${evtSeq++}`) {
  return JSON.stringify({
    id, object: 'event', type, created: Math.floor(Date.now() / 1000), api_version: '2024-06-20', livemode: false,
    data: { object: {
      id: pi.id, object: 'payment_intent', amount: pi.amount, amount_received: type.endsWith('succeeded') ? pi.amount : 0, currency: pi.currency ?? 'eur',
      metadata: pi.invoice ? { invoice: pi.invoice } : {}, payment_method_types: ['card'],
      status: type.endsWith('succeeded') ? 'succeeded' : type.endsWith('canceled') ? 'canceled' : 'requires_payment_method',
      ...(pi.error ? { last_payment_error: { message: pi.error } } : {}),
    } },
  });
}
const webhook = (payload: string, secret = WEBHOOK_SECRET, headers: Record<string, string> = {}) =>
  http('POST', `${srv.url}/webhooks/stripe`, { raw: payload, headers: { 'content-type': 'application/json', 'stripe-signature': stripe.webhooks.generateTestHeaderString({ payload, secret }), ...headers } });
const pay = async (invoiceId: string, token?: string) => {
  const res = await op(`Invoice/${invoiceId}/$pay`, {}, token);
  expect({ status: res.status, body: res.text.slice(0, 300) }).toMatchObject({ status: 200 });
  const get = (n: string) => res.body.parameter.find((p: any) => p.name === n);
  return { intent: get('paymentIntent').valueString as string, secret: get('clientSecret').valueString as string, amount: get('amount').valueInteger as number, attempt: get('attempt').valueInteger as number };
};
const succeed = (invoiceId: string, p: { intent: string; amount: number }) => webhook(event('payment_intent.succeeded', { id: p.intent, amount: p.amount, invoice: invoiceId }));
const read = async (ref: string) => (await http('GET', `${srv.base}/${ref}`)).body;
async function reconciliations(invoiceId: string): Promise<any[]> {
  const all = (await http('GET', `${srv.base}/PaymentReconciliation?_count=500`)).body.entry ?? [];
  return all.map((e: any) => e.resource).filter((r: any) => r.detail?.[0]?.request?.reference === `Invoice/${invoiceId}`);
}
/** Lets the hold of an appointment lapse now and runs the sweep that releases lapsed holds. */
async function lapse(slotRef: string) {
  await srv.running.mongo.db.collection('slot_claims').updateOne({ _id: slotRef } as never, { $set: { expiresAt: new Date(Date.now() - 1000) } });
  await srv.running.booking.releaseLapsedHolds();
}
async function hold(slotRef: string, token: string) {
  const h = await op('Appointment/$hold', { slot: slotRef }, token);
  expect({ status: h.status, body: h.text.slice(0, 300) }).toMatchObject({ status: 201 });
  const patient = h.body.participant.find((p: any) => p.actor.reference.startsWith('Patient/')).actor.reference;
  return { appointment: h.body, invoice: await invoiceOf(srv.base, patient, h.body.id) };
}

run('payments with Stripe (stripe-mock)', () => {
  beforeAll(async () => {
    smtp = await startSmtp();
    srv = await startTestServer({ SMTP_URL: smtp.url, STRIPE_SECRET_KEY: 'sk_test_medivoy', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, STRIPE_API_BASE: STRIPE_API_BASE!, CANCELLATION_CUTOFF_MINUTES: '60' });
    c = await clinic(srv.base, { id: 'pay', fee: 80, slots: 20 });
    strict = await clinic(srv.base, { id: 'strict', fee: 60, slots: 2, startMinutes: 2 * 1440 + 12 * 60, orgExtensions: [
      { url: `${SD}/cancellation-refund`, extension: [{ url: 'min-notice-hours', valueDecimal: 72 }, { url: 'percent', valueUnsignedInt: 100 }] },
      { url: `${SD}/cancellation-refund`, extension: [{ url: 'min-notice-hours', valueDecimal: 0 }, { url: 'percent', valueUnsignedInt: 50 }] },
    ] });
    ann = await registerPatient(srv.url, 'ann@pay.example', 'Ann');
    bob = await registerPatient(srv.url, 'bob@pay.example', 'Bob');
    annToken = (await userToken(srv.running, 'ann@pay.example', PASSWORD, 'launch/patient patient/*.cruds')).access_token;
    bobToken = (await userToken(srv.running, 'bob@pay.example', PASSWORD, 'launch/patient patient/*.cruds')).access_token;
  }, 90_000);
  afterAll(async () => {
    await srv?.close();
    await smtp?.close();
  });

  describe('hold → pay → book', () => {
    it('books only once the payment succeeds; $pay retried returns the same intent; the receipt is mailed; replays change nothing', async () => {
      const { appointment, invoice } = await hold(nextSlot(), annToken);
      expect(invoice).toMatchObject({ status: 'issued' });
      const first = await pay(invoice.id, annToken);
      expect(first.amount).toBe(8000);
      expect(first.secret).toMatch(/_secret_/);
      const again = await pay(invoice.id, annToken);
      expect(again).toEqual(first);
      // Not booked before the money is there.
      const early = await op(`Appointment/${appointment.id}/$book`, {}, annToken);
      expect(early.status).toBe(409);
      expect(early.body.issue[0].details.text).toContain('$pay');
      const ok = await succeed(invoice.id, first);
      expect({ status: ok.status, body: ok.text }).toMatchObject({ status: 200 });
      expect(ok.body).toMatchObject({ received: true, booked: `Appointment/${appointment.id}` });
      expect((await read(`Appointment/${appointment.id}`)).status).toBe('pending');
      const paid = await read(`Invoice/${invoice.id}`);
      expect(paid.status).toBe('balanced');
      expect(ext(paid, 'invoice-payment-method').valueCode).toBe('card');
      const prs = await reconciliations(invoice.id);
      expect(prs).toHaveLength(1);
      expect(prs[0]).toMatchObject({ status: 'active', outcome: 'complete', paymentIdentifier: { value: first.intent }, paymentAmount: { value: 80, currency: 'EUR' } });
      const notices = (await http('GET', `${srv.base}/PaymentNotice?identifier=${encodeURIComponent(`https://medivoy.example/fhir/stripe-payment-intent|${first.intent}`)}`)).body.entry;
      expect(notices).toHaveLength(1);
      expect(notices[0].resource).toMatchObject({ request: { reference: `Invoice/${invoice.id}` }, payment: { reference: `PaymentReconciliation/${prs[0].id}` } });
      expect(smtp.inbox.filter((m) => m.subject.startsWith('Receipt for invoice') && m.to[0] === 'ann@pay.example')).toHaveLength(1);
      // The same event again, and a second event for the same intent: no second record.
      const payload = event('payment_intent.succeeded', { id: first.intent, amount: 8000, invoice: invoice.id }, 'evt_replayed_once');
      expect((await webhook(payload)).status).toBe(200);
      const replay = await webhook(payload);
      expect(replay.body).toMatchObject({ received: true, duplicate: true });
      expect((await succeed(invoice.id, first)).status).toBe(200);
      expect(await reconciliations(invoice.id)).toHaveLength(1);
      // A second $pay on a balanced invoice.
      const second = await op(`Invoice/${invoice.id}/$pay`, {}, annToken);
      expect(second.status).toBe(409);
      expect(second.body.resourceType).toBe('OperationOutcome');
    });

    it('a failed payment leaves the invoice issued (noted) and releases the hold', async () => {
      const s = nextSlot();
      const { appointment, invoice } = await hold(s, annToken);
      const p = await pay(invoice.id, annToken);
      const res = await webhook(event('payment_intent.payment_failed', { id: p.intent, amount: p.amount, invoice: invoice.id, error: 'Your card was declined.' }));
      expect(res.body).toMatchObject({ recorded: 'failed', released: `Appointment/${appointment.id}` });
      expect((await read(`Appointment/${appointment.id}`)).status).toBe('cancelled');
      expect((await read(s)).status).toBe('free');
      const inv = await read(`Invoice/${invoice.id}`);
      expect(inv.note.some((n: any) => n.text.includes('declined'))).toBe(true);
      expect(await reconciliations(invoice.id)).toHaveLength(0);
    });

    it('on a pay-later booking a failure or cancellation keeps the invoice issued and the next $pay is a new attempt', async () => {
      const booked = await op('Appointment/$book', { slot: nextSlot() }, annToken);
      expect(booked.status).toBe(201);
      const invoice = await invoiceOf(srv.base, ann, booked.body.id);
      const p1 = await pay(invoice.id, annToken);
      await webhook(event('payment_intent.canceled', { id: p1.intent, amount: p1.amount, invoice: invoice.id }));
      expect((await read(`Invoice/${invoice.id}`)).status).toBe('issued');
      expect((await read(`Appointment/${booked.body.id}`)).status).toBe('pending');
      const p2 = await pay(invoice.id, annToken);
      expect(p2.attempt).toBe(2);
      expect(p2.intent).not.toBe(p1.intent);
      expect((await succeed(invoice.id, p2)).status).toBe(200);
      expect((await read(`Invoice/${invoice.id}`)).status).toBe('balanced');
      // Out of order: the failure of the earlier attempt arrives after the success and changes nothing.
      const late = await webhook(event('payment_intent.payment_failed', { id: p2.intent, amount: p2.amount, invoice: invoice.id }));
      expect(late.body).toMatchObject({ stale: true });
      expect((await read(`Invoice/${invoice.id}`)).status).toBe('balanced');
    });

    it('a success after the hold lapsed is refunded automatically (no charge without a booking)', async () => {
      const s = nextSlot();
      const { appointment, invoice } = await hold(s, annToken);
      const p = await pay(invoice.id, annToken);
      await lapse(s);
      expect((await read(`Appointment/${appointment.id}`)).status).toBe('cancelled');
      expect((await read(`Invoice/${invoice.id}`)).status).toBe('cancelled');
      const res = await succeed(invoice.id, p);
      expect(res.body).toMatchObject({ latePayment: true, refund: { amount: 8000 } });
      const prs = await reconciliations(invoice.id);
      expect(prs.map((r) => minor(r.paymentAmount)).sort((x, y) => x - y)).toEqual([-8000, 8000]);
      expect(prs.find((r) => minor(r.paymentAmount) < 0).paymentIdentifier.value).toMatch(/^re_/);
      const inv = await read(`Invoice/${invoice.id}`);
      expect(inv.status).toBe('cancelled');
      expect(minor(ext(inv, 'invoice-refunded').valueMoney)).toBe(8000);
    });

    it('two patients race for one slot with payment in between: one booking, the late payer refunded', async () => {
      const s = nextSlot();
      // Both hold at once: one claim wins.
      const tries = await Promise.all([op('Appointment/$hold', { slot: s }, annToken), op('Appointment/$hold', { slot: s }, bobToken)]);
      expect(tries.map((t) => t.status).sort()).toEqual([201, 409]);
      const firstIsAnn = tries[0]!.status === 201;
      const [firstToken, secondToken] = firstIsAnn ? [annToken, bobToken] : [bobToken, annToken];
      const first = { appointment: tries[firstIsAnn ? 0 : 1]!.body, invoice: await invoiceOf(srv.base, firstIsAnn ? ann : bob, tries[firstIsAnn ? 0 : 1]!.body.id) };
      const pFirst = await pay(first.invoice.id, firstToken);
      // The first patient's hold lapses while they pay; the other holds the slot, pays, and both successes arrive together.
      await lapse(s);
      const second = await hold(s, secondToken);
      const pSecond = await pay(second.invoice.id, secondToken);
      const [rFirst, rSecond] = await Promise.all([succeed(first.invoice.id, pFirst), succeed(second.invoice.id, pSecond)]);
      expect(rSecond.body).toMatchObject({ booked: `Appointment/${second.appointment.id}` });
      expect(rFirst.body).toMatchObject({ latePayment: true, refund: { amount: 8000 } });
      const active = (await http('GET', `${srv.base}/Appointment?slot=${s}&status=proposed,pending,booked`)).body.entry ?? [];
      expect(active.map((e: any) => e.resource.id)).toEqual([second.appointment.id]);
      expect((await read(`Invoice/${first.invoice.id}`)).status).toBe('cancelled');
      expect((await read(`Invoice/${second.invoice.id}`)).status).toBe('balanced');
    });

    it('a success that overtakes the sweep (hold lapsed, slot taken, appointment still proposed) is refunded too', async () => {
      const s = nextSlot();
      const a = await hold(s, annToken);
      const p = await pay(a.invoice.id, annToken);
      // The claim lapses and is taken by another booking before the sweep cancels Ann's appointment.
      await srv.running.mongo.db.collection('slot_claims').updateOne({ _id: s } as never, { $set: { expiresAt: new Date(Date.now() - 1000) } });
      expect(await srv.running.booking.claims.claim(s, 'Appointment/someone-else', 'booked')).toBe(true);
      const res = await succeed(a.invoice.id, p);
      expect(res.body).toMatchObject({ latePayment: true, refund: { amount: 8000 } });
      expect((await read(`Appointment/${a.appointment.id}`)).status).toBe('cancelled');
      expect((await read(`Invoice/${a.invoice.id}`)).status).toBe('cancelled');
      expect((await reconciliations(a.invoice.id)).map((r) => minor(r.paymentAmount)).sort((x, y) => x - y)).toEqual([-8000, 8000]);
      // The slot stays busy: it is the other booking's.
      expect((await read(s)).status).not.toBe('free');
    });
  });

  describe('the webhook', () => {
    it('refuses a bad signature (400) and stores nothing', async () => {
      const events = srv.running.mongo.db.collection('billing_webhook_events');
      const before = await events.countDocuments();
      const payload = event('payment_intent.succeeded', { id: 'pi_forged', amount: 8000 });
      expect((await webhook(payload, 'whsec_someone_else')).status).toBe(400);
      // A signature of another body: the body was altered.
      const altered = await http('POST', `${srv.url}/webhooks/stripe`, { raw: payload.replace('8000', '1'), headers: { 'stripe-signature': stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET }) } });
      expect(altered.status).toBe(400);
      expect(altered.body.resourceType).toBe('OperationOutcome');
      expect((await http('POST', `${srv.url}/webhooks/stripe`, { raw: payload })).status).toBe(400);
      expect(await events.countDocuments()).toBe(before);
    });

    it('answers 404 for an intent no invoice has, and handles the event once the intent is known (a retry)', async () => {
      const events = srv.running.mongo.db.collection('billing_webhook_events');
      const payload = event('payment_intent.succeeded', { id: 'pi_nobody_knows', amount: 8000 }, 'evt_unknown_intent');
      const res = await webhook(payload);
      expect(res.status).toBe(404);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(await events.findOne({ _id: 'evt_unknown_intent' } as never)).toBeNull();
    });

    it('refuses an event whose amount or currency is not the invoice\'s (422), recording nothing', async () => {
      const booked = await op('Appointment/$book', { slot: nextSlot() }, annToken);
      const invoice = await invoiceOf(srv.base, ann, booked.body.id);
      const p = await pay(invoice.id, annToken);
      expect((await webhook(event('payment_intent.succeeded', { id: p.intent, amount: 100, invoice: invoice.id }))).status).toBe(422);
      expect((await webhook(event('payment_intent.succeeded', { id: p.intent, amount: 8000, invoice: invoice.id, currency: 'usd' }))).status).toBe(422);
      expect(await reconciliations(invoice.id)).toHaveLength(0);
      expect((await read(`Invoice/${invoice.id}`)).status).toBe('issued');
    });
  });

  describe('refunds', () => {
    it('cancelling a paid appointment refunds per the default policy (in full 24 h ahead), as a negative PaymentReconciliation', async () => {
      const booked = await op('Appointment/$book', { slot: nextSlot() }, annToken);
      const invoice = await invoiceOf(srv.base, ann, booked.body.id);
      await succeed(invoice.id, await pay(invoice.id, annToken));
      const cancelled = await op(`Appointment/${booked.body.id}/$cancel`, { reason: 'Better' }, annToken);
      expect(cancelled.status).toBe(200);
      const prs = await reconciliations(invoice.id);
      expect(prs.map((r) => minor(r.paymentAmount)).sort((x, y) => x - y)).toEqual([-8000, 8000]);
      const inv = await read(`Invoice/${invoice.id}`);
      expect(inv.status).toBe('cancelled');
      expect(minor(ext(inv, 'invoice-refunded').valueMoney)).toBe(8000);
      expect(smtp.inbox.some((m) => m.subject.startsWith('Refund for invoice'))).toBe(true);
    });

    it('an Organization\'s own policy refunds half when the patient cancels with less notice', async () => {
      const booked = await op('Appointment/$book', { slot: strict.slots[0]! }, annToken);
      const invoice = await invoiceOf(srv.base, ann, booked.body.id);
      await succeed(invoice.id, await pay(invoice.id, annToken));
      expect((await op(`Appointment/${booked.body.id}/$cancel`, {}, annToken)).status).toBe(200); // 60 h ahead: less than 72 h
      const prs = await reconciliations(invoice.id);
      expect(prs.map((r) => minor(r.paymentAmount)).sort((x, y) => x - y)).toEqual([-3000, 6000]);
      const inv = await read(`Invoice/${invoice.id}`);
      expect(inv.status).toBe('balanced');
      expect(minor(ext(inv, 'invoice-refunded').valueMoney)).toBe(3000);
    });

    it('staff refund part of a payment, never more than is left (422, nothing stored); patients cannot refund (403)', async () => {
      const booked = await op('Appointment/$book', { slot: nextSlot() }, annToken);
      const invoice = await invoiceOf(srv.base, ann, booked.body.id);
      await succeed(invoice.id, await pay(invoice.id, annToken));
      expect((await op(`Invoice/${invoice.id}/$refund`, { amount: 1000 }, annToken)).status).toBe(403);
      const part = await op(`Invoice/${invoice.id}/$refund`, { amount: 3000, reason: 'Goodwill' });
      expect({ status: part.status, body: part.text.slice(0, 300) }).toMatchObject({ status: 200 });
      expect((await read(`Invoice/${invoice.id}`)).status).toBe('balanced');
      const before = (await reconciliations(invoice.id)).length;
      const tooMuch = await op(`Invoice/${invoice.id}/$refund`, { amount: 5001 });
      expect(tooMuch.status).toBe(422);
      expect(tooMuch.body.issue[0].details.text).toContain('more than');
      expect(await reconciliations(invoice.id)).toHaveLength(before);
      const rest = await op(`Invoice/${invoice.id}/$refund`, {});
      expect(rest.status).toBe(200);
      const inv = await read(`Invoice/${invoice.id}`);
      expect(inv.status).toBe('cancelled');
      expect(minor(ext(inv, 'invoice-refunded').valueMoney)).toBe(8000);
    });
  });

  describe('bad input', () => {
    let invoiceId: string;
    beforeAll(async () => {
      const booked = await op('Appointment/$book', { slot: nextSlot() }, bobToken);
      invoiceId = (await invoiceOf(srv.base, bob, booked.body.id)).id;
    });
    it.each([
      ['an unknown invoice', 'Invoice/nope/$pay', {}, 404],
      ['a negative amount', 'INV/$pay', { amount: -5 }, 400],
      ['a non-integer amount', 'INV/$pay', { amount: 12.5 }, 400],
      ['an amount that is not the amount due', 'INV/$pay', { amount: 7999 }, 422],
      ['another currency', 'INV/$pay', { currency: 'USD' }, 422],
      ['a refund of an unpaid invoice', 'INV/$refund', { amount: 100 }, 409],
      ['a refund with a negative amount', 'INV/$refund', { amount: -100 }, 400],
    ])('%s: an OperationOutcome and nothing stored', async (_what, path, p, status) => {
      const attempts = srv.running.mongo.db.collection('billing_payment_attempts');
      const before = await attempts.countDocuments();
      const res = await op(path.replace('INV', `Invoice/${invoiceId}`), p as Record<string, unknown>);
      expect({ status: res.status, type: res.body?.resourceType }).toEqual({ status, type: 'OperationOutcome' });
      expect(await attempts.countDocuments()).toBe(before);
      expect((await read(`Invoice/${invoiceId}`)).status).toBe('issued');
    });
    it('another patient\'s invoice is out of reach (404)', async () => {
      expect((await op(`Invoice/${invoiceId}/$pay`, {}, annToken)).status).toBe(404);
    });
  });
});
