import type { Appointment } from '@medplum/fhirtypes';
import { errors } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { Invoicing, patientShareOf, type BillingContext } from './invoicing.js';
import { Payments, type BookingPort } from './payments.js';
import { StripeGateway, type StripeSettings } from './stripe-gateway.js';

/** The hooks booking calls (scheduling/booking.ts BookingHooks and BookingGate, structurally: no import). */
export interface BillingBookingHooks {
  held(appointment: Appointment): Promise<void>;
  booked(appointment: Appointment): Promise<void>;
  cancelled(appointment: Appointment): Promise<void>;
  /** Before a held appointment is booked: refuses (409) while its invoice is unpaid. */
  beforeBookHeld(appointment: Appointment): Promise<void>;
}

/** Billing as server.ts wires it: invoices, payments, the booking hooks and the background repairs. */
export class Billing {
  readonly invoicing: Invoicing;
  readonly payments: Payments;
  readonly system: FhirRepository;
  private sweep?: NodeJS.Timeout;

  constructor(private readonly ctx: BillingContext, stripe: StripeSettings) {
    this.system = ctx.system;
    this.invoicing = new Invoicing(ctx);
    this.payments = new Payments(ctx, this.invoicing, new StripeGateway(stripe));
  }

  async init(booking: BookingPort): Promise<void> {
    this.payments.booking = booking;
    await this.invoicing.init();
    await this.payments.init();
    this.sweep = setInterval(() => void this.invoicing.repairNumbers().catch((err) => this.ctx.logger.warn({ err }, 'invoice number repair failed')), 30_000);
    this.sweep.unref();
  }

  stop(): void {
    clearInterval(this.sweep);
  }

  /** Booking's side: invoices when an appointment is held or booked, refunds or cancellation when it is cancelled. */
  hooks(): BillingBookingHooks {
    const log = (what: string) => (err: unknown) => this.ctx.logger.error({ err }, `billing: ${what} failed`);
    return {
      held: (a) => this.invoicing.issueFor(a).then(() => undefined, log('invoice for a hold')),
      booked: (a) => this.invoicing.issueFor(a).then(() => undefined, log('invoice for a booking')),
      cancelled: (a) => this.payments.appointmentCancelled(a).catch(log('cancellation refund')),
      beforeBookHeld: async (a) => {
        const invoice = (await this.invoicing.invoiceOf(a.id!))?.invoice ?? (await this.invoicing.issueFor(a));
        if (!invoice || invoice.status === 'balanced') return;
        if ((patientShareOf(invoice)?.minor ?? 0) === 0) return;
        throw errors.conflict(`Appointment/${a.id} is booked once Invoice/${invoice.id} is paid: call Invoice/${invoice.id}/$pay; the booking is confirmed when the payment succeeds`);
      },
    };
  }
}
