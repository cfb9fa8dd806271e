import type { Extension, Money } from '@medplum/fhirtypes';
import { errors } from '../fhir/outcomes.js';

/** Base of our own systems and extensions (CONTRACT.md). */
export const BILLING_BASE = 'https://medivoy.example/fhir';
export const SD = `${BILLING_BASE}/StructureDefinition`;
export const URLS = {
  invoiceNumber: `${BILLING_BASE}/invoice-number`,
  invoiceAppointment: `${SD}/invoice-appointment`,
  paymentMethod: `${SD}/invoice-payment-method`,
  minorUnits: `${SD}/amount-minor-units`,
  patientShare: `${SD}/invoice-patient-share`,
  refunded: `${SD}/invoice-refunded`,
  /** Organization: ISO 4217 code its invoices are in (valueCode; default EUR). */
  currency: `${SD}/billing-currency`,
  /** Organization: a tax on its services (sub-extensions `rate` valueDecimal percent, `label` valueString); absent: exempt. */
  tax: `${SD}/billing-tax`,
  /** Organization, repeated: refund `percent` (valueUnsignedInt) when cancelled at least `min-notice-hours` (valueDecimal) ahead. */
  cancellationRefund: `${SD}/cancellation-refund`,
  /** PractitionerRole: the fee of one consultation (scheduling/practitioner-extensions.ts). */
  consultationFee: 'http://medivoy.example/fhir/StructureDefinition/consultation-fee',
  stripeIntent: `${BILLING_BASE}/stripe-payment-intent`,
  stripeRefund: `${BILLING_BASE}/stripe-refund`,
} as const;

/** ISO 4217 minor-unit exponents that are not 2. */
const EXPONENTS: Record<string, number> = { JPY: 0, KRW: 0, ISK: 0, CLP: 0, VND: 0, XAF: 0, XOF: 0, BHD: 3, KWD: 3, OMR: 3, JOD: 3, TND: 3 };

export function exponent(currency: string): number {
  return EXPONENTS[currency] ?? 2;
}

export function isCurrency(code: unknown): code is string {
  return typeof code === 'string' && /^[A-Z]{3}$/.test(code);
}

/** An amount in whole minor units (cents), never a float. */
export interface Amount {
  minor: number;
  currency: string;
}

/** Money (decimal major units) → exact minor units; a value with more decimals than the currency has is refused. */
export function toMinor(m: Money | undefined, what: string): Amount {
  if (!m || typeof m.value !== 'number' || !isCurrency(m.currency)) throw errors.businessRule(`${what} needs a value and an ISO 4217 currency`);
  const scaled = m.value * 10 ** exponent(m.currency);
  const minor = Math.round(scaled);
  if (Math.abs(scaled - minor) > 1e-6) throw errors.businessRule(`${what} (${m.value} ${m.currency}) has more decimals than ${m.currency} has minor units`);
  if (!Number.isSafeInteger(minor)) throw errors.businessRule(`${what} is out of range`);
  return { minor, currency: m.currency };
}

/** Minor units → Money with the exact integer beside it (extension amount-minor-units). */
export function money(a: Amount): Money {
  const e = exponent(a.currency);
  const value = Number((a.minor / 10 ** e).toFixed(e));
  return { value, currency: a.currency as Money['currency'], extension: [{ url: URLS.minorUnits, valueInteger: a.minor }] } as Money;
}

/** The exact minor units of a Money we wrote (its extension), else computed from its value. */
export function minorOf(m: Money | undefined): Amount | undefined {
  if (!m?.currency) return undefined;
  const ext = (m as Money & { extension?: Extension[] }).extension?.find((x) => x.url === URLS.minorUnits)?.valueInteger;
  if (typeof ext === 'number') return { minor: ext, currency: m.currency };
  return typeof m.value === 'number' ? toMinor(m, 'amount') : undefined;
}

/** `12.34 EUR` for texts and the PDF. */
export function format(a: Amount): string {
  const e = exponent(a.currency);
  return `${(a.minor / 10 ** e).toFixed(e)} ${a.currency}`;
}

/** Percent of an amount, rounded half away from zero to whole minor units. */
export function percentOf(minor: number, percent: number): number {
  const v = (minor * percent) / 100;
  return Math.sign(v) * Math.round(Math.abs(v) + 1e-9);
}
