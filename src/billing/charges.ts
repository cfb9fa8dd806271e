import type { CoverageEligibilityResponse } from '@medplum/fhirtypes';
import type { RefundStep, TaxRule } from './billing-config.js';
import { minorOf, percentOf, type Amount } from './money.js';

/** What the patient's insurance pays towards one service, from its latest eligibility response. */
export interface InsuranceTerms {
  coverage: string;
  eligibility: string;
  /** Minor units the patient pays first, before the insurer pays anything. */
  deductible: number;
  /** Minor units the patient pays per service. */
  copay: number;
  /** Percent of the rest (after the deductible) the patient pays. */
  coinsurance: number;
}

export interface PatientShareLine {
  code: 'deductible' | 'copay' | 'coinsurance';
  display: string;
  minor: number;
}

/** One consultation priced: all in minor units of one currency. */
export interface Pricing {
  currency: string;
  net: number;
  tax: number;
  taxRule: TaxRule;
  gross: number;
  /** What the insurer pays (a deduction on the invoice). */
  insurer: number;
  /** What the patient pays: gross − insurer, itemized in `shareLines` when insured. */
  patient: number;
  shareLines: PatientShareLine[];
  insurance?: InsuranceTerms;
}

/**
 * Prices a fee: tax on the net (rounded half up to a minor unit), then the patient's share after insurance:
 * the deductible first (up to the gross), then the copay and the coinsurance on what the deductible left,
 * never more than the gross. Without insurance the patient pays the gross.
 */
export function price(fee: Amount, taxRule: TaxRule, insurance?: InsuranceTerms): Pricing {
  if (!Number.isSafeInteger(fee.minor) || fee.minor < 0) throw new RangeError('A fee is a non-negative whole number of minor units');
  const tax = percentOf(fee.minor, taxRule.rate);
  const gross = fee.minor + tax;
  if (!insurance) return { currency: fee.currency, net: fee.minor, tax, taxRule, gross, insurer: 0, patient: gross, shareLines: [] };
  const lines: PatientShareLine[] = [];
  let left = gross;
  const take = (code: PatientShareLine['code'], display: string, want: number) => {
    const minor = Math.max(0, Math.min(left, want));
    left -= minor;
    if (minor > 0) lines.push({ code, display, minor });
  };
  take('deductible', 'Deductible', insurance.deductible);
  const afterDeductible = left;
  take('copay', 'Copayment', insurance.copay);
  take('coinsurance', `Coinsurance ${insurance.coinsurance}%`, percentOf(afterDeductible, insurance.coinsurance));
  const patient = gross - left;
  return { currency: fee.currency, net: fee.minor, tax, taxRule, gross, insurer: left, patient, shareLines: lines, insurance };
}

/**
 * The insurance terms of a CoverageEligibilityResponse (CONTRACT.md / src/insurance): only a complete, in-force
 * answer counts; money in another currency than the invoice's is not applied (returned in `skipped`).
 */
export function termsOf(r: CoverageEligibilityResponse, currency: string): { terms?: InsuranceTerms; skipped: string[] } {
  const ins = r.insurance?.[0];
  if (r.outcome !== 'complete' || !ins?.inforce || !ins.coverage?.reference) return { skipped: [] };
  const item = ins.item?.find((i) => !i.excluded) ?? undefined;
  if (!item && ins.item?.length) return { skipped: [] }; // every category excluded: not covered
  const skipped: string[] = [];
  const moneyBenefit = (code: string): number => {
    const b = item?.benefit?.find((x) => x.type?.coding?.some((c) => c.code === code));
    const m = minorOf(b?.allowedMoney);
    if (!m) return 0;
    if (m.currency !== currency) {
      skipped.push(`${code} in ${m.currency}`);
      return 0;
    }
    return m.minor;
  };
  const coins = item?.benefit?.find((x) => x.type?.coding?.some((c) => c.code === 'coinsurance'))?.allowedUnsignedInt ?? 0;
  return {
    terms: { coverage: ins.coverage.reference, eligibility: `CoverageEligibilityResponse/${r.id}`, deductible: moneyBenefit('deductible'), copay: moneyBenefit('copay'), coinsurance: Math.min(100, coins) },
    skipped,
  };
}

/**
 * The share of a payment refunded when an appointment is cancelled `noticeMs` before its start: a cancellation
 * by the practice is refunded in full; the patient's per the policy's steps (the longest notice met).
 */
export function refundPercent(policy: RefundStep[], noticeMs: number, byPatient: boolean): number {
  if (!byPatient) return 100;
  const hours = noticeMs / 3_600_000;
  const step = [...policy].sort((a, b) => b.minNoticeHours - a.minNoticeHours).find((s) => hours >= s.minNoticeHours);
  return step?.percent ?? 0;
}
