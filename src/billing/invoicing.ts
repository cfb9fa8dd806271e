import { randomUUID } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import type {
  Appointment, Binary, ChargeItem, ChargeItemDefinition, Coverage, CoverageEligibilityResponse, DocumentReference, HumanName,
  Invoice, InvoiceLineItem, InvoiceLineItemPriceComponent, Organization, Patient, Practitioner, PractitionerRole, Resource,
} from '@medplum/fhirtypes';
import { errors, isOperationOutcomeError } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import { isDuplicateKey } from '../fhir/storage/mongo/version-writer.js';
import type { Logger } from '../infra/logger.js';
import type { Mailer } from '../infra/mailer.js';
import { settingsOf, type BillingSettings } from './billing-config.js';
import { price, termsOf, type InsuranceTerms, type Pricing } from './charges.js';
import { InvoiceNumbers } from './invoice-numbers.js';
import { renderInvoicePdf } from './invoice-pdf.js';
import { BILLING_BASE, format, minorOf, money, toMinor, URLS, type Amount } from './money.js';

/** Which invoice belongs to an appointment: inserted before the invoice is written, so each appointment gets one. */
interface InvoiceClaim {
  _id: string; // Appointment/<id>
  invoice: string; // Invoice/<id>
  at: Date;
}

/** E-mails sent once (invoice, receipt, refund) whatever the retries. */
interface MailLedger {
  _id: string;
  at: Date;
}

export interface BillingContext {
  db: Db;
  /** The server's repository: billing acts for the organization (its writes still validated and versioned). */
  system: FhirRepository;
  mailer: Mailer;
  logger: Logger;
}

/** What an appointment costs and who it is billed to. */
export interface Charge {
  appointment: Appointment;
  patient: string;
  role: PractitionerRole;
  organization?: Organization;
  settings: BillingSettings;
  fee: Amount;
  /** Where the fee came from (the role's extension or a ChargeItemDefinition). */
  source: string;
  pricing: Pricing;
  insuranceNotes: string[];
}

const PRICE_COMPONENT = `${BILLING_BASE}/CodeSystem/price-component`;
const PATIENT_SHARE = `${BILLING_BASE}/CodeSystem/patient-share`;

export const patientOf = (a: Appointment) => a.participant.find((p) => p.actor?.reference?.startsWith('Patient/'))?.actor?.reference;
const roleOf = (a: Appointment) => a.participant.find((p) => p.actor?.reference?.startsWith('PractitionerRole/'))?.actor?.reference;
export const idOf = (ref: string) => ref.slice(ref.indexOf('/') + 1);
export const appointmentOfInvoice = (i: Invoice) => i.extension?.find((e) => e.url === URLS.invoiceAppointment)?.valueReference?.reference;
export const patientShareOf = (i: Invoice): Amount | undefined => minorOf(i.extension?.find((e) => e.url === URLS.patientShare)?.valueMoney);
export const refundedOf = (i: Invoice): number => minorOf(i.extension?.find((e) => e.url === URLS.refunded)?.valueMoney)?.minor ?? 0;
export const numberOf = (i: Invoice) => i.identifier?.find((x) => x.system === URLS.invoiceNumber)?.value;

export function nameOf(r: Resource | undefined): string {
  const n = (r as { name?: HumanName[] | string } | undefined)?.name;
  if (typeof n === 'string') return n;
  const h = n?.[0];
  return h ? [h.prefix?.join(' '), h.given?.join(' '), h.family].filter(Boolean).join(' ') || h.text || '' : '';
}
export const emailOf = (r: Resource | undefined) => (r as Patient | undefined)?.telecom?.find((t) => t.system === 'email')?.value;

/**
 * Charges and invoices: the fee of a booked (or held) appointment becomes a ChargeItem and an Invoice
 * (CONTRACT.md) with a number from InvoiceNumbers, its PDF (Binary + DocumentReference) and an e-mail to the
 * patient. One invoice per appointment, whichever process or hook asks first.
 */
export class Invoicing {
  readonly numbers: InvoiceNumbers;
  private readonly claims: Collection<InvoiceClaim>;
  private readonly ledger: Collection<MailLedger>;

  constructor(private readonly ctx: BillingContext) {
    this.numbers = new InvoiceNumbers(ctx.db);
    this.claims = ctx.db.collection<InvoiceClaim>('billing_invoice_claims');
    this.ledger = ctx.db.collection<MailLedger>('billing_mail_ledger');
  }

  async init(): Promise<void> {
    await this.numbers.init();
  }

  /** The appointment's charge, or undefined when it has no fee (no role fee, no ChargeItemDefinition). */
  async chargeFor(appointment: Appointment): Promise<Charge | undefined> {
    const patient = patientOf(appointment);
    const roleRef = roleOf(appointment);
    if (!patient || !roleRef) return undefined;
    const role = await this.read<PractitionerRole>(roleRef);
    if (!role) return undefined;
    const orgRef = role.organization?.reference;
    const organization = orgRef ? await this.read<Organization>(orgRef) : undefined;
    const settings = settingsOf(organization);
    let fee: Amount | undefined;
    let source = `${roleRef} consultation-fee`;
    const ext = role.extension?.find((e) => e.url === URLS.consultationFee)?.valueMoney;
    if (ext) fee = toMinor(ext, `The consultation fee of ${roleRef}`);
    else {
      const def = await this.definitionFor(roleRef, orgRef);
      if (def) {
        const m = def.propertyGroup?.flatMap((g) => g.priceComponent ?? []).find((c) => c.type === 'base')?.amount;
        fee = toMinor(m, `The base price of ChargeItemDefinition/${def.id}`);
        source = `ChargeItemDefinition/${def.id}`;
      }
    }
    if (!fee || fee.minor === 0) return undefined;
    if (fee.minor < 0) throw errors.businessRule(`The fee from ${source} is negative`);
    if (fee.currency !== settings.currency) {
      throw errors.businessRule(`The fee from ${source} is in ${fee.currency}, but ${orgRef ?? 'the organization'} bills in ${settings.currency}`);
    }
    const { terms, notes } = await this.insuranceOf(patient, settings.currency);
    return { appointment, patient, role, organization, settings, fee, source, pricing: price(fee, settings.tax, terms), insuranceNotes: notes };
  }

  /** The invoice of an appointment, if it has one. */
  async invoiceOf(appointmentId: string): Promise<{ invoice: Invoice; version: string } | undefined> {
    const claim = await this.claims.findOne({ _id: `Appointment/${appointmentId}` });
    if (!claim) return undefined;
    for (let i = 0; i < 50; i++) {
      try {
        const v = await this.ctx.system.read('Invoice', idOf(claim.invoice));
        return { invoice: parseResource(v) as Invoice, version: v.versionId };
      } catch (err) {
        if (!isOperationOutcomeError(err) || err.status !== 404) throw err;
        // Another process claimed it and is writing it right now (or failed and will drop the claim).
        await new Promise((r) => setTimeout(r, 100));
        if (!(await this.claims.findOne({ _id: claim._id }))) return undefined;
      }
    }
    throw errors.unavailable(`The invoice of Appointment/${appointmentId} is being written; try again`);
  }

  /**
   * Issues the appointment's invoice (once: a second call returns the first invoice). Undefined when the
   * appointment has no fee. The ChargeItem and the draft Invoice are written as one unit; then the number is
   * allocated and the Invoice issued; then the PDF is stored and mailed (those failures are logged only).
   */
  async issueFor(appointment: Appointment): Promise<Invoice | undefined> {
    const existing = await this.invoiceOf(appointment.id!);
    if (existing) return existing.invoice;
    const charge = await this.chargeFor(appointment);
    if (!charge) return undefined;
    const invoiceId = randomUUID();
    try {
      await this.claims.insertOne({ _id: `Appointment/${appointment.id}`, invoice: `Invoice/${invoiceId}`, at: new Date() });
    } catch (err) {
      if (isDuplicateKey(err)) return (await this.invoiceOf(appointment.id!))?.invoice;
      throw err;
    }
    const now = new Date();
    try {
      await this.ctx.system.transaction(async (tx) => {
        const chargeItem = (await tx.create(this.chargeItem(charge, now))).version;
        await tx.create(this.draft(charge, invoiceId, chargeItem.id, now), { id: invoiceId });
      });
    } catch (err) {
      await this.claims.deleteOne({ _id: `Appointment/${appointment.id}` }).catch(() => undefined);
      throw err;
    }
    const number = await this.numbers.allocate(`Invoice/${invoiceId}`, now);
    const issued = await this.applyNumber(invoiceId, number);
    await this.sendInvoice(issued, charge).catch((err) => this.ctx.logger.warn({ err, invoice: invoiceId }, 'invoice PDF or e-mail failed'));
    return issued;
  }

  /** Puts an allocated number on its draft invoice and issues it (idempotent: a repair may run it again). */
  async applyNumber(invoiceId: string, number: string): Promise<Invoice> {
    const stored = await this.update(invoiceId, (inv) => {
      if (numberOf(inv) === number) return undefined;
      return { ...inv, status: inv.status === 'draft' ? 'issued' : inv.status, identifier: [{ system: URLS.invoiceNumber, value: number }, ...(inv.identifier ?? [])] };
    });
    await this.numbers.applied(number);
    return stored;
  }

  /** Finishes numbers claimed by a process that stopped before writing them on the invoice. */
  async repairNumbers(): Promise<number> {
    let n = 0;
    for (const p of await this.numbers.pending(30_000)) {
      await this.applyNumber(idOf(p.invoice), p.number).then(() => n++, (err) => this.ctx.logger.warn({ err, number: p.number }, 'finishing an invoice number failed'));
    }
    return n;
  }

  /** Reads, changes and writes an Invoice with optimistic locking (retried on a concurrent change). */
  async update(invoiceId: string, change: (inv: Invoice) => Invoice | undefined): Promise<Invoice> {
    for (let attempt = 0; ; attempt++) {
      const v = await this.ctx.system.read('Invoice', invoiceId);
      const current = parseResource(v) as Invoice;
      const next = change(current);
      if (!next) return current;
      try {
        return parseResource((await this.ctx.system.update(next, { ifMatch: v.versionId })).version) as Invoice;
      } catch (err) {
        if (!isOperationOutcomeError(err) || err.status !== 412 || attempt >= 20) throw err;
      }
    }
  }

  /** The invoice PDF as a Binary with its DocumentReference (once per invoice), and the e-mail to the patient (once). */
  async sendInvoice(invoice: Invoice, charge?: Charge): Promise<void> {
    const number = numberOf(invoice)!;
    const doc = await this.documentOf(invoice.id!);
    let pdf: Buffer;
    if (doc) pdf = Buffer.from((parseResource(await this.ctx.system.read('Binary', idOf(doc.content[0]!.attachment.url!))) as Binary).data ?? '', 'base64');
    else {
      const appointment = appointmentOfInvoice(invoice) ? await this.read<Appointment>(appointmentOfInvoice(invoice)!) : undefined;
      const c = charge ?? (appointment ? await this.chargeFor(appointment) : undefined);
      if (!c) throw errors.notFound(`Invoice/${invoice.id} has no PDF: it is not an appointment's invoice with a fee`);
      const practitioner = c.role.practitioner?.reference ? await this.read<Practitioner>(c.role.practitioner.reference) : undefined;
      const patient = await this.read<Patient>(c.patient);
      pdf = await renderInvoicePdf({
        number, date: new Date(invoice.date ?? Date.now()), issuer: c.organization?.name ?? 'Medivoy', patient: nameOf(patient) || c.patient,
        practitioner: nameOf(practitioner) || undefined, service: 'Consultation', appointmentStart: c.appointment.start, pricing: c.pricing,
      });
      await this.ctx.system.transaction(async (tx) => {
        const binary = (await tx.create({ resourceType: 'Binary', contentType: 'application/pdf', securityContext: { reference: `Invoice/${invoice.id}` }, data: pdf.toString('base64') } as Binary)).version;
        const ref: DocumentReference = {
          resourceType: 'DocumentReference', status: 'current',
          type: { coding: [{ system: `${BILLING_BASE}/CodeSystem/document-type`, code: 'invoice', display: 'Invoice' }], text: 'Invoice' },
          subject: invoice.subject, date: new Date().toISOString(), description: `Invoice ${number}`,
          ...(invoice.issuer ? { custodian: invoice.issuer } : {}),
          content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${binary.id}`, title: `${number}.pdf`, size: pdf.length } }],
          context: { related: [{ reference: `Invoice/${invoice.id}` }] },
        };
        await tx.create(ref);
      });
    }
    const share = patientShareOf(invoice);
    await this.mailOnce(`invoice|${invoice.id}`, invoice.subject?.reference, {
      subject: `Invoice ${number}`,
      text: `Your invoice ${number} is attached. Amount due: ${share ? format(share) : ''}.`,
      attachments: [{ filename: `${number}.pdf`, contentType: 'application/pdf', content: pdf }],
    });
  }

  /** The DocumentReference of an invoice's PDF (the one that points at its Binary). */
  async documentOf(invoiceId: string): Promise<DocumentReference | undefined> {
    const found = await this.ctx.system.findByCriteria('DocumentReference', `related=Invoice/${invoiceId}`, 5);
    return found.map((v) => parseResource(v) as DocumentReference).find((d) => d.content?.[0]?.attachment?.url?.startsWith('Binary/'));
  }

  /** Sends an e-mail to a patient once per key (a failed send may be tried again). */
  async mailOnce(key: string, patientRef: string | undefined, mail: { subject: string; text: string; attachments?: { filename: string; contentType: string; content: Buffer }[] }): Promise<boolean> {
    const patient = patientRef ? await this.read<Patient>(patientRef) : undefined;
    const to = emailOf(patient);
    if (!to) return false;
    try {
      await this.ledger.insertOne({ _id: key, at: new Date() });
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
    try {
      await this.ctx.mailer.send({ to, subject: mail.subject, text: mail.text, html: `<p>${escapeHtml(mail.text)}</p>`, attachments: mail.attachments });
      return true;
    } catch (err) {
      await this.ledger.deleteOne({ _id: key }).catch(() => undefined);
      throw err;
    }
  }

  // ------------------------------------------------------------------------------------------------

  private chargeItem(c: Charge, now: Date): ChargeItem {
    return {
      resourceType: 'ChargeItem', status: 'billed',
      code: { coding: [{ system: `${BILLING_BASE}/CodeSystem/charge`, code: 'consultation', display: 'Consultation' }], text: 'Consultation' },
      subject: { reference: c.patient },
      ...(c.appointment.start ? { occurrenceDateTime: c.appointment.start } : {}),
      performer: [{ actor: { reference: `PractitionerRole/${c.role.id}` } }],
      ...(c.organization ? { performingOrganization: { reference: `Organization/${c.organization.id}` } } : {}),
      enteredDate: now.toISOString(),
      priceOverride: money(c.fee),
      supportingInformation: [{ reference: `Appointment/${c.appointment.id}` }],
    };
  }

  private draft(c: Charge, id: string, chargeItemId: string, now: Date): Invoice {
    const p = c.pricing;
    const a = (minor: number) => money({ minor, currency: p.currency });
    const components: InvoiceLineItemPriceComponent[] = [
      { type: 'base', code: { text: 'Consultation' }, amount: a(p.net) },
      { type: 'tax', code: { text: p.taxRule.label }, factor: p.taxRule.rate / 100, amount: a(p.tax) },
      ...(p.insurance ? [{ type: 'deduction' as const, code: { coding: [{ system: PRICE_COMPONENT, code: 'insurer-share', display: 'Paid by insurance' }] }, amount: a(p.insurer) }] : []),
    ];
    const lines: InvoiceLineItem[] = [
      { sequence: 1, chargeItemReference: { reference: `ChargeItem/${chargeItemId}` }, priceComponent: components },
      ...p.shareLines.map((l, i) => ({
        sequence: i + 2,
        chargeItemCodeableConcept: { coding: [{ system: PATIENT_SHARE, code: l.code, display: l.display }], text: `Patient share: ${l.display}` },
        priceComponent: [{ type: 'informational' as const, code: { coding: [{ system: PATIENT_SHARE, code: l.code }] }, amount: a(l.minor) }],
      })),
    ];
    return {
      resourceType: 'Invoice', id, status: 'draft',
      subject: { reference: c.patient },
      ...(c.organization ? { issuer: { reference: `Organization/${c.organization.id}` } } : {}),
      participant: [{ actor: { reference: `PractitionerRole/${c.role.id}` } }],
      date: now.toISOString(),
      lineItem: lines,
      totalNet: a(p.net),
      totalGross: a(p.gross),
      extension: [
        { url: URLS.invoiceAppointment, valueReference: { reference: `Appointment/${c.appointment.id}` } },
        { url: URLS.patientShare, valueMoney: a(p.patient) },
      ],
      ...(p.insurance || c.insuranceNotes.length ? {
        note: [
          ...(p.insurance ? [{ text: `Insurance: ${p.insurance.coverage} (${p.insurance.eligibility}) pays ${format({ minor: p.insurer, currency: p.currency })}` }] : []),
          ...c.insuranceNotes.map((text) => ({ text })),
        ],
      } : {}),
    };
  }

  /** An active ChargeItemDefinition whose `instance` names the role, else one naming the organization. */
  private async definitionFor(roleRef: string, orgRef: string | undefined): Promise<ChargeItemDefinition | undefined> {
    const defs = (await this.ctx.system.findByCriteria('ChargeItemDefinition', 'status=active', 200)).map((v) => parseResource(v) as ChargeItemDefinition);
    const names = (d: ChargeItemDefinition, ref: string) => d.instance?.some((i) => i.reference === ref);
    return defs.find((d) => names(d, roleRef)) ?? (orgRef ? defs.find((d) => names(d, orgRef)) : undefined);
  }

  /** The patient's insurance terms: their active Coverage's latest complete eligibility response. */
  private async insuranceOf(patient: string, currency: string): Promise<{ terms?: InsuranceTerms; notes: string[] }> {
    const coverages = (await this.ctx.system.findByCriteria('Coverage', `beneficiary=${patient}&status=active`, 20)).map((v) => parseResource(v) as Coverage);
    if (!coverages.length) return { notes: [] };
    const refs = new Set(coverages.map((c) => `Coverage/${c.id}`));
    const responses = (await this.ctx.system.findByCriteria('CoverageEligibilityResponse', `patient=${patient}`, 200))
      .map((v) => parseResource(v) as CoverageEligibilityResponse)
      .filter((r) => refs.has(r.insurance?.[0]?.coverage?.reference ?? ''))
      .sort((x, y) => Date.parse(y.created) - Date.parse(x.created));
    const latest = responses[0];
    if (!latest) return { notes: [] };
    const { terms, skipped } = termsOf(latest, currency);
    return { terms, notes: skipped.map((s) => `Not applied from CoverageEligibilityResponse/${latest.id}: ${s} (the invoice is in ${currency})`) };
  }

  async read<T extends Resource>(ref: string): Promise<T | undefined> {
    const [type, id] = ref.split('/');
    if (!type || !id) return undefined;
    try {
      return parseResource(await this.ctx.system.read(type, id)) as T;
    } catch (err) {
      if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) return undefined;
      throw err;
    }
  }
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
