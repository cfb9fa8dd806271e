import type { Extension, Organization } from '@medplum/fhirtypes';
import { isCurrency, URLS } from './money.js';

export interface TaxRule {
  /** Percent, e.g. 19 or 7.7; 0 = exempt. */
  rate: number;
  label: string;
}

/** One step of a cancellation policy: cancelled at least this long before the start → this share back. */
export interface RefundStep {
  minNoticeHours: number;
  percent: number;
}

export interface BillingSettings {
  currency: string;
  tax: TaxRule;
  /** Sorted by notice, longest first. */
  cancellation: RefundStep[];
}

/**
 * The default cancellation policy, from the guide's rules: a patient may cancel their own appointment up to the
 * cancellation cutoff (24 h before the start, CANCELLATION_CUTOFF_MINUTES) and is then refunded in full; later
 * cancellations are the practice's to make and refund half when made at least 2 h ahead, nothing after that.
 * A cancellation by the practice (practitioner, administrator) is always refunded in full.
 */
export const DEFAULT_CANCELLATION: RefundStep[] = [
  { minNoticeHours: 24, percent: 100 },
  { minNoticeHours: 2, percent: 50 },
  { minNoticeHours: 0, percent: 0 },
];

export const EXEMPT: TaxRule = { rate: 0, label: 'Exempt (healthcare services)' };

const sub = (e: Extension, url: string) => e.extension?.find((x) => x.url === url);

/** Problems with an Organization's billing extensions (empty: fine); the same rules settingsOf applies. */
export function billingProblems(org: Organization): string[] {
  const problems: string[] = [];
  const cur = org.extension?.find((e) => e.url === URLS.currency);
  if (cur && !isCurrency(cur.valueCode)) problems.push(`${URLS.currency} needs valueCode with an ISO 4217 currency such as EUR`);
  const tax = org.extension?.find((e) => e.url === URLS.tax);
  if (tax) {
    const rate = sub(tax, 'rate')?.valueDecimal;
    if (typeof rate !== 'number' || rate < 0 || rate > 100) problems.push(`${URLS.tax} needs a sub-extension rate (valueDecimal, percent 0-100)`);
  }
  for (const step of org.extension?.filter((e) => e.url === URLS.cancellationRefund) ?? []) {
    const hours = sub(step, 'min-notice-hours')?.valueDecimal;
    const percent = sub(step, 'percent')?.valueUnsignedInt;
    if (typeof hours !== 'number' || hours < 0) problems.push(`${URLS.cancellationRefund} needs min-notice-hours (valueDecimal >= 0)`);
    if (typeof percent !== 'number' || percent > 100) problems.push(`${URLS.cancellationRefund} needs percent (valueUnsignedInt 0-100)`);
  }
  return problems;
}

/** An Organization's billing settings from its extensions: EUR, tax-exempt and the default policy unless it says otherwise. */
export function settingsOf(org: Organization | undefined): BillingSettings {
  const ext = org?.extension ?? [];
  const code = ext.find((e) => e.url === URLS.currency)?.valueCode;
  const taxExt = ext.find((e) => e.url === URLS.tax);
  const rate = taxExt ? sub(taxExt, 'rate')?.valueDecimal : undefined;
  const steps = ext.filter((e) => e.url === URLS.cancellationRefund).map((e) => ({
    minNoticeHours: sub(e, 'min-notice-hours')?.valueDecimal ?? 0,
    percent: Math.min(100, sub(e, 'percent')?.valueUnsignedInt ?? 0),
  }));
  return {
    currency: isCurrency(code) ? code : 'EUR',
    tax: typeof rate === 'number' && rate > 0 ? { rate, label: sub(taxExt!, 'label')?.valueString ?? `Tax ${rate}%` } : EXEMPT,
    cancellation: (steps.length ? steps : DEFAULT_CANCELLATION).sort((a, b) => b.minNoticeHours - a.minNoticeHours),
  };
}
