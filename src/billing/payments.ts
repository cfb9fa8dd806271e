import type { Collection } from 'mongodb';
import type { Appointment, Invoice, Organization, PaymentNotice, PaymentReconciliation } from '@medplum/fhirtypes';
import type Stripe from 'stripe';
import { errors, isOperationOutcomeError, issue, outcome, OperationOutcomeError } from '../fhir/outcomes.js';
import { isDuplicateKey } from '../fhir/storage/mongo/version-writer.js';
import { refundPercent } from './charges.js';
import { settingsOf } from './billing-config.js';
import { appointmentOfInvoice, idOf, Invoicing, numberOf, patientOf, patientShareOf, refundedOf, type BillingContext } from './invoicing.js';
import { format, money, percentOf, URLS, type Amount } from './money.js';
import type { StripeGateway } from './stripe-gateway.js';

/** What billing needs of scheduling (built in server.ts, so scheduling does not know billing). */
export interface BookingPort {
  /** Books a held appointment (as `$book` would); throws a 409 outcome when the hold lapsed and the slot was taken. */
  bookHeld(appointmentRef: string): Promise<Appointment>;
  /** Cancels (releases) an appointment as the system. */
  cancel(appointmentRef: string, reason: string): Promise<Appointment>;
}

/** One payment attempt of an invoice: `$pay` creates it, retries of `$pay` return it until it fails. */
interface Attempt {
  _id: string; // Invoice/<id>#<n>
  invoice: string;
  n: number;
  state: 'creating' | 'open' | 'succeeded' | 'failed' | 'canceled';
  intent?: string;
  clientSecret?: string;
  amount: number;
  currency: string;
  at: Date;
}

/** The payment that settled an invoice (one per invoice) and how much of it has been refunded. */
interface Settlement {
  _id: string; // Invoice/<id>
  intent: string;
  amount: number;
  currency: string;
  refunded: number;
  /** Bumped by every refund reservation (compare-and-set). */
  v: number;
}

interface WebhookEvent {
  _id: string; // evt_…
  type: string;
  state: 'processing' | 'done';
  at: Date;
}

interface OnceClaim {
  _id: string;
  at: Date;
}

const PAYMENT_TYPE = 'http://terminology.hl7.org/CodeSystem/payment-type';
const STALE_EVENT_MS = 60_000;

export interface PayResult {
  invoice: Invoice;
  intent: string;
  clientSecret: string;
  amount: Amount;
  attempt: number;
}

export interface WebhookAnswer {
  status: number;
  body: Record<string, unknown>;
}

/**
 * Payments with Stripe: `$pay` (a PaymentIntent per invoice attempt), the webhook (each event once; payments
 * recorded as PaymentReconciliation + PaymentNotice, the Invoice balanced, the held booking confirmed or the
 * money given back), refunds (cancellation policy, `$refund`).
 */
export class Payments {
  private readonly attempts: Collection<Attempt>;
  private readonly settlements: Collection<Settlement>;
  private readonly events: Collection<WebhookEvent>;
  private readonly once: Collection<OnceClaim>;
  booking?: BookingPort;

  constructor(
    private readonly ctx: BillingContext,
    private readonly invoicing: Invoicing,
    readonly stripe: StripeGateway,
  ) {
    this.attempts = ctx.db.collection<Attempt>('billing_payment_attempts');
    this.settlements = ctx.db.collection<Settlement>('billing_settlements');
    this.events = ctx.db.collection<WebhookEvent>('billing_webhook_events');
    this.once = ctx.db.collection<OnceClaim>('billing_once');
  }

  async init(): Promise<void> {
    await this.attempts.createIndex({ invoice: 1, n: -1 });
    await this.attempts.createIndex({ intent: 1 });
  }

  // ---------------------------------------------------------------------------------------- $pay

  /** `Invoice/[id]/$pay` on an invoice the caller could read: the open attempt's intent, or a new attempt. */
  async pay(invoice: Invoice, requested: { amount?: number; currency?: string }): Promise<PayResult> {
    if (invoice.status === 'balanced') throw errors.conflict(`Invoice/${invoice.id} is already paid (balanced)`);
    if (invoice.status !== 'issued') throw errors.conflict(`Invoice/${invoice.id} is ${invoice.status}: only an issued invoice is paid`);
    const due = patientShareOf(invoice);
    if (!due) throw errors.businessRule(`Invoice/${invoice.id} has no amount due`);
    if (requested.currency !== undefined && requested.currency !== due.currency) {
      throw errors.businessRule(`Invoice/${invoice.id} is in ${due.currency}, not ${requested.currency}`);
    }
    if (requested.amount !== undefined && requested.amount !== due.minor) {
      throw errors.businessRule(`Invoice/${invoice.id} is paid in full: ${due.minor} minor units (${format(due)}), not ${requested.amount}`);
    }
    if (due.minor === 0) throw errors.conflict(`Invoice/${invoice.id} has nothing to pay (the insurer pays all of it)`);
    if (!this.stripe.enabled) throw errors.unavailable('Payments are not configured on this server (STRIPE_SECRET_KEY)');
    const ref = `Invoice/${invoice.id}`;
    for (let round = 0; round < 100; round++) {
      const last = await this.attempts.find({ invoice: ref }).sort({ n: -1 }).limit(1).next();
      if (last?.state === 'succeeded') throw errors.conflict(`${ref} has been paid; the payment is being recorded`);
      if (last?.state === 'open' && last.intent) return { invoice, intent: last.intent, clientSecret: last.clientSecret!, amount: { minor: last.amount, currency: last.currency }, attempt: last.n };
      if (last?.state === 'creating') {
        if (Date.now() - last.at.getTime() > 30_000) await this.attempts.deleteOne({ _id: last._id, state: 'creating' }); // its creator died
        else await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const n = (last?.n ?? 0) + 1;
      try {
        await this.attempts.insertOne({ _id: `${ref}#${n}`, invoice: ref, n, state: 'creating', amount: due.minor, currency: due.currency, at: new Date() });
      } catch (err) {
        if (isDuplicateKey(err)) continue; // another request started this attempt: wait for its intent
        throw err;
      }
      let intent;
      try {
        intent = await this.stripe.createIntent({
          amount: due.minor, currency: due.currency, description: `Invoice ${numberOf(invoice)}`,
          metadata: { invoice: invoice.id!, attempt: String(n), ...(appointmentOfInvoice(invoice) ? { appointment: appointmentOfInvoice(invoice)! } : {}) },
          idempotencyKey: `medivoy-invoice-${invoice.id}-attempt-${n}`,
        });
      } catch (err) {
        await this.attempts.deleteOne({ _id: `${ref}#${n}` });
        this.ctx.logger.warn({ err, invoice: ref }, 'Stripe refused the PaymentIntent');
        throw stripeOutcome(err);
      }
      await this.attempts.updateOne({ _id: `${ref}#${n}` }, { $set: { state: 'open', intent: intent.id, clientSecret: intent.clientSecret } });
      return { invoice, intent: intent.id, clientSecret: intent.clientSecret, amount: due, attempt: n };
    }
    throw errors.unavailable(`${ref}: another payment attempt is being started; try again`);
  }

  // ------------------------------------------------------------------------------------- webhook

  /** `POST /webhooks/stripe`: verify, then handle each event id once (a replay answers 200 and changes nothing). */
  async webhook(raw: Buffer, signature: string | undefined): Promise<WebhookAnswer> {
    if (!this.stripe.webhooksEnabled) throw errors.unavailable('Stripe webhooks are not configured on this server (STRIPE_WEBHOOK_SECRET)');
    if (!signature) throw errors.badRequest('Missing Stripe-Signature header');
    let event: Stripe.Event;
    try {
      event = this.stripe.verify(raw, signature);
    } catch {
      throw errors.badRequest('The Stripe-Signature does not match the body (wrong secret, altered body or too old)');
    }
    try {
      await this.events.insertOne({ _id: event.id, type: event.type, state: 'processing', at: new Date() });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      const seen = await this.events.findOne({ _id: event.id });
      if (seen?.state === 'done') return { status: 200, body: { received: true, duplicate: true } };
      // Being handled by another request, or by one that died: take over a stale claim only.
      const taken = await this.events.updateOne({ _id: event.id, state: 'processing', at: { $lt: new Date(Date.now() - STALE_EVENT_MS) } }, { $set: { at: new Date() } });
      if (!taken.modifiedCount) throw errors.conflict(`Event ${event.id} is being processed; Stripe will retry`);
    }
    try {
      const handled = await this.handle(event);
      await this.events.updateOne({ _id: event.id }, { $set: { state: 'done' } });
      return { status: 200, body: { received: true, ...handled } };
    } catch (err) {
      await this.events.deleteOne({ _id: event.id, state: 'processing' }).catch(() => undefined); // Stripe retries it
      throw err;
    }
  }

  private async handle(event: Stripe.Event): Promise<Record<string, unknown>> {
    switch (event.type) {
      case 'payment_intent.succeeded':
        return this.succeeded(event.data.object as Stripe.PaymentIntent);
      case 'payment_intent.payment_failed':
      case 'payment_intent.canceled':
        return this.failed(event.data.object as Stripe.PaymentIntent, event.type === 'payment_intent.canceled' ? 'canceled' : 'failed');
      default:
        return { ignored: event.type };
    }
  }

  private async attemptOf(pi: Stripe.PaymentIntent): Promise<Attempt> {
    const attempt = await this.attempts.findOne({ intent: pi.id });
    if (!attempt) throw errors.notFound(`No invoice has PaymentIntent ${pi.id}`);
    if (pi.metadata?.invoice && `Invoice/${pi.metadata.invoice}` !== attempt.invoice) throw errors.businessRule(`PaymentIntent ${pi.id} names Invoice/${pi.metadata.invoice}, but was created for ${attempt.invoice}`);
    return attempt;
  }

  /** A payment succeeded: recorded (idempotently), the invoice balanced, the held booking confirmed, or a full refund. */
  private async succeeded(pi: Stripe.PaymentIntent): Promise<Record<string, unknown>> {
    const attempt = await this.attemptOf(pi);
    const received = pi.amount_received || pi.amount;
    const currency = (pi.currency ?? '').toUpperCase();
    if (currency !== attempt.currency) throw errors.businessRule(`PaymentIntent ${pi.id} is in ${currency}, the invoice in ${attempt.currency}`);
    if (!Number.isSafeInteger(received) || received !== attempt.amount) throw errors.businessRule(`PaymentIntent ${pi.id} received ${received}, the invoice asked ${attempt.amount} minor units`);
    const paid: Amount = { minor: received, currency };
    const method = pi.payment_method_types?.[0] ?? 'card';
    await this.attempts.updateOne({ _id: attempt._id }, { $set: { state: 'succeeded' } });
    // One settlement per invoice: a second successful intent (a duplicate payment) is given back in full.
    let first = true;
    try {
      await this.settlements.insertOne({ _id: attempt.invoice, intent: pi.id, amount: paid.minor, currency, refunded: 0, v: 0 });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      first = (await this.settlements.findOne({ _id: attempt.invoice }))?.intent === pi.id;
    }
    const invoiceId = idOf(attempt.invoice);
    await this.recordPayment(invoiceId, pi.id, paid, method, first);
    if (!first) {
      const refund = await this.refundIntent(invoiceId, pi.id, paid.minor, paid.minor, 'Duplicate payment');
      return { invoice: attempt.invoice, duplicatePayment: true, refund };
    }
    const invoice = await this.invoicing.update(invoiceId, (inv) => inv.status === 'issued' || inv.status === 'draft'
      ? { ...inv, status: 'balanced', extension: [...(inv.extension ?? []).filter((e) => e.url !== URLS.paymentMethod), { url: URLS.paymentMethod, valueCode: method }] }
      : undefined);
    await this.invoicing.mailOnce(`receipt|${pi.id}`, invoice.subject?.reference, {
      subject: `Receipt for invoice ${numberOf(invoice)}`,
      text: `We received your payment of ${format(paid)} for invoice ${numberOf(invoice)} (${pi.id}). Thank you.`,
    }).catch((err) => this.ctx.logger.warn({ err }, 'receipt e-mail failed'));
    // The booking: a hold is booked now; a cancelled appointment (the hold lapsed, released) gets the money back.
    const apptRef = appointmentOfInvoice(invoice);
    const appointment = apptRef ? await this.invoicing.read<Appointment>(apptRef) : undefined;
    if (invoice.status === 'cancelled' || !appointment || appointment.status === 'cancelled' || appointment.status === 'noshow') {
      const refund = await this.refundRest(invoiceId, 'The appointment was released before the payment arrived', true);
      return { invoice: attempt.invoice, latePayment: true, refund };
    }
    if (appointment.status === 'proposed' && this.booking) {
      try {
        await this.booking.bookHeld(apptRef!);
      } catch (err) {
        if (!isOperationOutcomeError(err) || (err.status !== 409 && err.status !== 404)) throw err;
        // Refunded (and the invoice cancelled) first, so the cancellation's own refund rule finds nothing paid.
        const refund = await this.refundRest(invoiceId, 'The hold lapsed and the slot was taken before the payment arrived', true);
        await this.booking.cancel(apptRef!, 'The hold lapsed before the payment arrived').catch(() => undefined);
        return { invoice: attempt.invoice, latePayment: true, refund };
      }
      return { invoice: attempt.invoice, booked: apptRef };
    }
    return { invoice: attempt.invoice, balanced: true };
  }

  /** A payment failed or was canceled: noted on the invoice (which stays issued); a hold waiting for it is released. */
  private async failed(pi: Stripe.PaymentIntent, kind: 'failed' | 'canceled'): Promise<Record<string, unknown>> {
    const attempt = await this.attemptOf(pi);
    if (attempt.state === 'succeeded') return { invoice: attempt.invoice, stale: true }; // out of order: success wins
    await this.attempts.updateOne({ _id: attempt._id, state: { $ne: 'succeeded' } }, { $set: { state: kind } });
    const reason = pi.last_payment_error?.message ?? pi.cancellation_reason ?? kind;
    const text = `Payment ${pi.id} ${kind}: ${reason}`;
    const invoice = await this.invoicing.update(idOf(attempt.invoice), (inv) => inv.note?.some((n) => n.text === text) ? undefined : { ...inv, note: [...(inv.note ?? []), { text, time: new Date().toISOString() }] });
    const apptRef = appointmentOfInvoice(invoice);
    const appointment = apptRef ? await this.invoicing.read<Appointment>(apptRef) : undefined;
    if (appointment?.status === 'proposed' && this.booking && invoice.status !== 'balanced') {
      await this.booking.cancel(apptRef!, `Payment ${kind}`).catch((err) => this.ctx.logger.warn({ err }, 'releasing the hold failed'));
      return { invoice: attempt.invoice, recorded: kind, released: apptRef };
    }
    return { invoice: attempt.invoice, recorded: kind };
  }

  /** PaymentReconciliation (+ PaymentNotice) of a payment, once per intent, in one unit of work. */
  private async recordPayment(invoiceId: string, intent: string, paid: Amount, method: string, settles: boolean): Promise<void> {
    const invoice = (await this.invoicing.read<Invoice>(`Invoice/${invoiceId}`))!;
    const now = new Date().toISOString();
    await this.ctx.system.transaction(async (tx) => {
      const pr: PaymentReconciliation = {
        resourceType: 'PaymentReconciliation', status: 'active',
        identifier: [{ system: URLS.stripeIntent, value: intent }],
        created: now, paymentDate: now.slice(0, 10), paymentAmount: money(paid),
        paymentIdentifier: { system: URLS.stripeIntent, value: intent }, outcome: 'complete',
        disposition: settles ? `Payment of invoice ${numberOf(invoice)}` : `Duplicate payment of invoice ${numberOf(invoice)}`,
        ...(invoice.issuer ? { paymentIssuer: invoice.issuer } : {}),
        detail: [{ type: { coding: [{ system: PAYMENT_TYPE, code: 'payment' }] }, request: { reference: `Invoice/${invoiceId}` }, amount: money(paid), date: now.slice(0, 10) }],
        extension: [{ url: URLS.paymentMethod, valueCode: method }],
      };
      const stored = await tx.create(pr, { ifNoneExist: `identifier=${URLS.stripeIntent}|${intent}` });
      if (!stored.created) return; // recorded by an earlier delivery
      const notice: PaymentNotice = {
        resourceType: 'PaymentNotice', status: 'active', identifier: [{ system: URLS.stripeIntent, value: intent }],
        request: { reference: `Invoice/${invoiceId}` }, created: now, payment: { reference: `PaymentReconciliation/${stored.version.id}` },
        paymentDate: now.slice(0, 10), recipient: invoice.issuer ?? { display: 'Medivoy' }, amount: money(paid),
      };
      await tx.create(notice);
    });
  }

  // ------------------------------------------------------------------------------------- refunds

  /** On cancellation of an appointment: an unpaid invoice is cancelled; a paid one refunded per the organization's policy. */
  async appointmentCancelled(appointment: Appointment): Promise<void> {
    const found = await this.invoicing.invoiceOf(appointment.id!);
    if (!found) return;
    const { invoice } = found;
    if (invoice.status === 'issued' || invoice.status === 'draft') {
      await this.invoicing.update(invoice.id!, (inv) => inv.status === 'issued' || inv.status === 'draft' ? { ...inv, status: 'cancelled', cancelledReason: appointment.cancelationReason?.text ?? 'Appointment cancelled' } : undefined);
      for (const a of await this.attempts.find({ invoice: `Invoice/${invoice.id}`, state: 'open' }).toArray()) {
        await this.stripe.cancelIntent(a.intent!).catch((err) => this.ctx.logger.warn({ err, intent: a.intent }, 'cancelling the PaymentIntent failed'));
      }
      return;
    }
    if (invoice.status !== 'balanced') return;
    if (!(await this.claimOnce(`cancel-refund|Appointment/${appointment.id}`))) return;
    const settlement = await this.settlements.findOne({ _id: `Invoice/${invoice.id}` });
    if (!settlement) return;
    const cancel = appointment.extension?.find((e) => e.url.endsWith('/cancellation'));
    const by = cancel?.extension?.find((e) => e.url === 'by')?.valueString;
    const at = Date.parse(cancel?.extension?.find((e) => e.url === 'at')?.valueDateTime ?? new Date().toISOString());
    const org = invoice.issuer?.reference ? await this.invoicing.read<Organization>(invoice.issuer.reference) : undefined;
    const percent = refundPercent(settingsOf(org).cancellation, Date.parse(appointment.start!) - at, by === patientOf(appointment));
    const amount = percentOf(settlement.amount, percent);
    if (amount <= 0) {
      await this.invoicing.update(invoice.id!, (inv) => ({ ...inv, note: [...(inv.note ?? []), { text: `Cancelled ${Math.round((Date.parse(appointment.start!) - at) / 3_600_000)} h ahead: no refund under the cancellation policy` }] }));
      return;
    }
    await this.refundSettlement(invoice.id!, amount, `Cancellation refund (${percent}%)`, false);
  }

  /** `Invoice/[id]/$refund` by billing staff: part or all of what was paid, never more. */
  async refundRequested(invoice: Invoice, amount: number | undefined, reason: string | undefined) {
    const settlement = await this.settlements.findOne({ _id: `Invoice/${invoice.id}` });
    if (!settlement || invoice.status === 'issued' || invoice.status === 'draft') throw errors.conflict(`Invoice/${invoice.id} has not been paid: nothing to refund`);
    const left = settlement.amount - settlement.refunded;
    const want = amount ?? left;
    if (want > left) throw errors.businessRule(`A refund of ${want} minor units is more than the ${left} left of the payment of Invoice/${invoice.id} (${settlement.amount} paid, ${settlement.refunded} refunded)`);
    if (want <= 0) throw errors.conflict(`Invoice/${invoice.id} has been refunded in full`);
    return this.refundSettlement(invoice.id!, want, reason ?? 'Refund', false);
  }

  /**
   * A late payment given back: what is left of it (the appointment's cancellation may have refunded it meanwhile,
   * when the lapsed-hold sweep of another process released the hold while this payment was being recorded).
   */
  private async refundRest(invoiceId: string, reason: string, cancelInvoice: boolean) {
    for (let i = 0; i < 5; i++) {
      const s = await this.settlements.findOne({ _id: `Invoice/${invoiceId}` });
      const left = s ? s.amount - s.refunded : 0;
      if (left <= 0) return { alreadyRefunded: true, amount: s?.refunded ?? 0 };
      try {
        return await this.refundSettlement(invoiceId, left, reason, cancelInvoice);
      } catch (err) {
        if (!isOperationOutcomeError(err) || err.status !== 422) throw err; // a concurrent refund took part of it: look again
      }
    }
    throw errors.conflict(`Invoice/${invoiceId}: refunds are being made concurrently; try again`);
  }

  /** Reserves `amount` of the settlement (compare-and-set), refunds it through Stripe and records it. */
  private async refundSettlement(invoiceId: string, amount: number, reason: string, cancelInvoice: boolean) {
    for (let i = 0; i < 20; i++) {
      const s = await this.settlements.findOne({ _id: `Invoice/${invoiceId}` });
      if (!s) throw errors.conflict(`Invoice/${invoiceId} has not been paid`);
      if (s.refunded + amount > s.amount) throw errors.businessRule(`A refund of ${amount} minor units is more than the ${s.amount - s.refunded} left of the payment`);
      const res = await this.settlements.updateOne({ _id: s._id, v: s.v }, { $set: { refunded: s.refunded + amount, v: s.v + 1 } });
      if (!res.modifiedCount) continue;
      try {
        return await this.refundIntent(invoiceId, s.intent, amount, s.amount, reason, `${s.v + 1}`, cancelInvoice);
      } catch (err) {
        await this.settlements.updateOne({ _id: s._id }, { $inc: { refunded: -amount, v: 1 } }).catch(() => undefined);
        throw err;
      }
    }
    throw errors.conflict(`Invoice/${invoiceId}: refunds are being made concurrently; try again`);
  }

  /** A Stripe refund of one intent, recorded as a PaymentReconciliation with a negative amount and on the Invoice. */
  private async refundIntent(invoiceId: string, intent: string, amount: number, paidMinor: number, reason: string, seq = 'duplicate', cancelInvoice = true) {
    const invoice = (await this.invoicing.read<Invoice>(`Invoice/${invoiceId}`))!;
    const currency = (patientShareOf(invoice) ?? { currency: 'EUR' }).currency;
    let refund: { id: string; status: string };
    try {
      refund = await this.stripe.refund({ intent, amount, idempotencyKey: `medivoy-refund-${invoiceId}-${intent}-${seq}`, metadata: { invoice: invoiceId, reason } });
    } catch (err) {
      this.ctx.logger.warn({ err, invoice: invoiceId }, 'Stripe refused the refund');
      throw stripeOutcome(err);
    }
    const back: Amount = { minor: -amount, currency };
    const now = new Date().toISOString();
    await this.ctx.system.create({
      resourceType: 'PaymentReconciliation', status: 'active',
      identifier: [{ system: URLS.stripeRefund, value: refund.id }],
      created: now, paymentDate: now.slice(0, 10), paymentAmount: money(back),
      paymentIdentifier: { system: URLS.stripeRefund, value: refund.id }, outcome: 'complete', disposition: `${reason} (${intent})`,
      detail: [{ type: { coding: [{ system: PAYMENT_TYPE, code: 'payment' }] }, request: { reference: `Invoice/${invoiceId}` }, amount: money(back), date: now.slice(0, 10) }],
      extension: [{ url: URLS.paymentMethod, valueCode: 'card' }],
    } as PaymentReconciliation, { ifNoneExist: `identifier=${URLS.stripeRefund}|${refund.id}` });
    const duplicate = seq === 'duplicate';
    const updated = await this.invoicing.update(invoiceId, (inv) => {
      const total = duplicate ? refundedOf(inv) : refundedOf(inv) + amount;
      const full = !duplicate && total >= paidMinor;
      return {
        ...inv,
        ...(full || (cancelInvoice && !duplicate) ? { status: 'cancelled' as const, cancelledReason: reason } : {}),
        extension: [...(inv.extension ?? []).filter((e) => e.url !== URLS.refunded), ...(total > 0 ? [{ url: URLS.refunded, valueMoney: money({ minor: total, currency }) }] : [])],
        note: [...(inv.note ?? []), { text: `Refunded ${format({ minor: amount, currency })}: ${reason} (${refund.id})`, time: now }],
      };
    });
    await this.invoicing.mailOnce(`refund|${refund.id}`, updated.subject?.reference, {
      subject: `Refund for invoice ${numberOf(updated)}`,
      text: `We refunded ${format({ minor: amount, currency })} of invoice ${numberOf(updated)}: ${reason}.`,
    }).catch(() => undefined);
    return { id: refund.id, amount, currency };
  }

  private async claimOnce(key: string): Promise<boolean> {
    try {
      await this.once.insertOne({ _id: key, at: new Date() });
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }
}

/** A Stripe API error as an outcome: 502 (the gateway answered with an error or not at all). */
function stripeOutcome(err: unknown) {
  const message = (err as { message?: string }).message ?? 'no answer';
  return new OperationOutcomeError(502, outcome([issue('error', 'transient', `The payment provider refused the request: ${message}`)]));
}
