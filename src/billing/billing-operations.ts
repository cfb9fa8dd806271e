import type { Binary, Invoice, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { errors } from '../fhir/outcomes.js';
import type { BusinessOperation, OperationContext, OperationInput } from '../fhir/operations/registry.js';
import { parseResource } from '../fhir/storage/types.js';
import type { Billing } from './billing.js';
import { money } from './money.js';
import { appointmentOfInvoice, numberOf } from './invoicing.js';

/** An amount parameter: a whole, positive number of minor units (valueInteger, or digits in the query), else 400. */
function amountParam(input: OperationInput, name = 'amount'): number | undefined {
  const p = input.parameters.parameter?.find((x) => x.name === name);
  if (!p) return undefined;
  const raw: unknown = p.valueInteger ?? p.valuePositiveInt ?? p.valueUnsignedInt ?? p.valueDecimal ?? p.valueString;
  const n = typeof raw === 'string' && /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw errors.badRequest(`${name} is a whole number of minor units (e.g. 8000 for 80.00 EUR), not ${JSON.stringify(raw)}`);
  if (n <= 0) throw errors.badRequest(`${name} must be positive, not ${n}`);
  return n;
}

function stringParam(input: OperationInput, name: string): string | undefined {
  const p = input.parameters.parameter?.find((x) => x.name === name);
  const v = p?.valueCode ?? p?.valueString;
  if (p && typeof v !== 'string') throw errors.badRequest(`${name} needs a code or string value`);
  return v;
}

/** The invoice through the caller's repository: out of their reach is 404, as for a read. */
async function invoiceFor(input: OperationInput, ctx: OperationContext): Promise<Invoice> {
  if (!ctx.access) throw errors.unauthorized('Billing operations need an access token');
  return parseResource(await ctx.repo.read('Invoice', input.target.id!)) as Invoice;
}

const out = (parameter: ParametersParameter[]): Parameters => ({ resourceType: 'Parameters', parameter });

/** Billing staff: administrators (system, hospital at the issuer, backend) acting with write access to Invoice. */
function requireStaff(ctx: OperationContext, invoice: Invoice): void {
  const a = ctx.access!;
  const backend = !a.accountId && a.scopes.some((s) => s.context === 'system');
  const admin = a.role === 'system-admin' || (a.role === 'hospital-admin' && a.organization === invoice.issuer?.reference);
  if (!backend && !admin) throw errors.forbidden('Refunds are made by the billing staff (an administrator of the issuing organization)');
  const canWrite = a.scopes.some((s) => (s.type === 'Invoice' || s.type === '*') && s.permissions.has('u'));
  if (!canWrite) throw errors.forbidden('A refund needs a scope that writes Invoice');
}

/** `Invoice/[id]/$pay`, `$refund`, `$pdf`. */
export function billingOperations(deps: { billing: () => Billing }): BusinessOperation[] {
  return [
    {
      name: 'pay', levels: ['instance'], resourceTypes: ['Invoice'], methods: ['POST'], affectsState: true,
      description: "Starts paying an issued invoice's patient share with Stripe: a PaymentIntent per attempt (a retried call returns the same one) whose client secret the app confirms; the webhook records the payment.",
      parameters: [
        { name: 'amount', use: 'in', min: 0, max: '1', type: 'integer', documentation: 'Optional check: the amount due in minor units (must equal the patient share)' },
        { name: 'currency', use: 'in', min: 0, max: '1', type: 'code', documentation: "Optional check: the invoice's ISO 4217 currency" },
        { name: 'return', use: 'out', min: 1, max: '1', type: 'Parameters', documentation: 'invoice, paymentIntent, clientSecret, amount (minor units), currency, attempt' },
      ],
      handler: async (input, ctx) => {
        const amount = amountParam(input);
        const currency = stringParam(input, 'currency');
        const invoice = await invoiceFor(input, ctx);
        const r = await deps.billing().payments.pay(invoice, { amount, currency });
        return {
          status: 200,
          resource: out([
            { name: 'invoice', valueReference: { reference: `Invoice/${invoice.id}` } },
            { name: 'paymentIntent', valueString: r.intent },
            { name: 'clientSecret', valueString: r.clientSecret },
            { name: 'amount', valueInteger: r.amount.minor },
            { name: 'currency', valueCode: r.amount.currency },
            { name: 'attempt', valueInteger: r.attempt },
          ]),
        };
      },
    },
    {
      name: 'refund', levels: ['instance'], resourceTypes: ['Invoice'], methods: ['POST'], affectsState: true,
      description: 'Refunds part or all of the payment of an invoice through Stripe (billing staff); recorded as a PaymentReconciliation with a negative amount.',
      parameters: [
        { name: 'amount', use: 'in', min: 0, max: '1', type: 'integer', documentation: 'Minor units to refund (default: all that is left)' },
        { name: 'reason', use: 'in', min: 0, max: '1', type: 'string' },
        { name: 'return', use: 'out', min: 1, max: '1', type: 'Parameters', documentation: 'refund (Stripe id), amount' },
      ],
      handler: async (input, ctx) => {
        const amount = amountParam(input);
        const invoice = await invoiceFor(input, ctx);
        requireStaff(ctx, invoice);
        const r = await deps.billing().payments.refundRequested(invoice, amount, stringParam(input, 'reason'));
        return { status: 200, resource: out([{ name: 'refund', valueString: r.id }, { name: 'amount', valueMoney: money({ minor: r.amount, currency: r.currency }) }]) };
      },
    },
    {
      name: 'pdf', levels: ['instance'], resourceTypes: ['Invoice'], methods: ['GET'], affectsState: false,
      description: 'The PDF of an invoice as a Binary (application/pdf), for its patient and the billing staff (whoever may read the Invoice).',
      parameters: [{ name: 'return', use: 'out', min: 1, max: '1', type: 'Binary' }],
      handler: async (input, ctx) => {
        const invoice = await invoiceFor(input, ctx);
        const billing = deps.billing();
        let doc = await billing.invoicing.documentOf(invoice.id!);
        // Invoices of ours (an appointment and a number) get their PDF now if writing it failed before.
        if (!doc && invoice.status !== 'draft' && appointmentOfInvoice(invoice) && numberOf(invoice)) {
          await billing.invoicing.sendInvoice(invoice);
          doc = await billing.invoicing.documentOf(invoice.id!);
        }
        const url = doc?.content?.[0]?.attachment?.url;
        if (!url) throw errors.notFound(`Invoice/${invoice.id} has no PDF yet`);
        const binary = parseResource(await billing.system.read('Binary', url.slice('Binary/'.length))) as Binary;
        return { status: 200, resource: binary };
      },
    },
  ];
}
