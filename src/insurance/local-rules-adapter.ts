import type { Coding, Extension, Money, Organization } from '@medplum/fhirtypes';
import type { BenefitAnswer, EligibilityAnswer, EligibilityQuery, PayerAdapter } from './payer-adapter.js';

export const EXT = 'http://medivoy.example/fhir/StructureDefinition/';
/** On a payor Organization: which adapter answers its eligibility requests (valueCode). */
export const PAYER_ADAPTER_URL = `${EXT}payer-adapter`;
/** On a payor Organization: the local rules, one extension per plan (or one without `plan` for all). */
export const PAYER_RULES_URL = `${EXT}payer-rules`;
export const BENEFIT_CATEGORY_SYSTEM = 'http://terminology.hl7.org/CodeSystem/ex-benefitcategory';

/** The rules of one plan as the payor Organization's `payer-rules` extension states them. */
export interface PayerRules {
  plan?: string;
  inForce: boolean;
  copay?: Money;
  deductible?: Money;
  coinsurance?: number;
  /** Covered benefit categories (codes of ex-benefitcategory); none listed: every category is covered. */
  categories: string[];
}

const sub = (e: Extension, url: string) => (e.extension ?? []).filter((x) => x.url === url);

/**
 * Reads and checks the `payer-rules` extensions of an Organization; the problems are returned so that an
 * administrator's bad configuration is refused when the Organization is written (see coverage-guard.ts),
 * not discovered at the desk.
 */
export function readPayerRules(org: Organization): { rules: PayerRules[]; problems: string[] } {
  const problems: string[] = [];
  const rules: PayerRules[] = [];
  for (const [i, e] of (org.extension ?? []).entries()) {
    if (e.url !== PAYER_RULES_URL) continue;
    const where = `Organization.extension[${i}]`;
    const one = (url: string) => {
      const found = sub(e, url);
      if (found.length > 1) problems.push(`${where}: '${url}' may appear once`);
      return found[0];
    };
    const money = (url: string): Money | undefined => {
      const m = one(url)?.valueMoney;
      if (one(url) && (!m || typeof m.value !== 'number' || m.value < 0 || !/^[A-Z]{3}$/.test(m.currency ?? ''))) {
        problems.push(`${where}: '${url}' needs valueMoney with a non-negative value and a currency`);
        return undefined;
      }
      return m;
    };
    const inForce = one('in-force');
    if (typeof inForce?.valueBoolean !== 'boolean') problems.push(`${where}: 'in-force' (valueBoolean) is required`);
    const co = one('coinsurance');
    const percent = co?.valueUnsignedInt ?? co?.valueInteger;
    if (co && (typeof percent !== 'number' || !Number.isInteger(percent) || percent < 0 || percent > 100)) problems.push(`${where}: 'coinsurance' needs valueUnsignedInt 0-100 (percent)`);
    const categories = sub(e, 'category').map((c) => c.valueCoding);
    if (categories.some((c) => !c?.code || (c.system && c.system !== BENEFIT_CATEGORY_SYSTEM))) problems.push(`${where}: 'category' needs valueCoding of ${BENEFIT_CATEGORY_SYSTEM}`);
    const plan = one('plan');
    if (plan && !plan.valueString) problems.push(`${where}: 'plan' needs valueString`);
    rules.push({
      plan: plan?.valueString, inForce: inForce?.valueBoolean === true, copay: money('copay'), deductible: money('deductible'),
      coinsurance: typeof percent === 'number' ? percent : undefined, categories: categories.map((c) => c?.code ?? '').filter(Boolean),
    });
    const plans = rules.map((r) => r.plan ?? '');
    if (new Set(plans).size !== plans.length) problems.push(`${where}: two payer-rules for the same plan`);
  }
  return { rules, problems };
}

/**
 * The payer answered from rules kept on its own Organization (`payer-rules`): for payers without an online
 * connection, and for tests. The rules of the Coverage's plan apply (else those without a plan); a Coverage
 * period that does not include the service date, or `in-force` false, means not in force. Deductible is
 * reported as the plan states it (no claims history is kept here to lower it).
 */
export class LocalRulesAdapter implements PayerAdapter {
  readonly kind = 'local-rules';

  async check(q: EligibilityQuery): Promise<EligibilityAnswer> {
    const { rules } = readPayerRules(q.payer.organization);
    const plan = rules.find((r) => r.plan !== undefined && r.plan === q.plan) ?? rules.find((r) => r.plan === undefined);
    if (!plan) {
      return { inforce: false, items: [], errors: [{ code: 'a001', display: `No plan '${q.plan ?? '(none)'}' known to ${q.payer.name ?? q.payer.reference}` }], disposition: 'Plan not found' };
    }
    const period = q.coverage.period;
    const day = q.serviceDate;
    const inPeriod = (!period?.start || period.start.slice(0, 10) <= day) && (!period?.end || period.end.slice(0, 10) >= day);
    const inforce = plan.inForce && inPeriod;
    const items = q.categories.map((category: Coding) => {
      const covered = inforce && (!plan.categories.length || plan.categories.includes(category.code ?? ''));
      const benefits: BenefitAnswer[] = [];
      if (covered) {
        if (plan.deductible) benefits.push({ kind: 'deductible', money: plan.deductible });
        if (plan.copay) benefits.push({ kind: 'copay', money: plan.copay });
        if (plan.coinsurance !== undefined) benefits.push({ kind: 'coinsurance', percent: plan.coinsurance });
      }
      return { category, covered, benefits };
    });
    return {
      inforce, items,
      benefitPeriod: period?.start || period?.end ? period : undefined,
      disposition: inforce ? 'Coverage in force' : !plan.inForce ? 'Plan not in force' : `Coverage not in force on ${day}`,
    };
  }
}
