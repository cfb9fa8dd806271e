import type { Coding, Coverage, HumanName, Identifier, Money, Organization, Period } from '@medplum/fhirtypes';

/**
 * The port between `CoverageEligibilityRequest/$submit` and a payer. It is shaped after what an ASC X12
 * 270 inquiry carries and a 271 answer returns, so that an EDI bridge (through a clearinghouse) can implement it
 * without the FHIR side changing:
 *
 * | EligibilityQuery          | X12 270                                                   |
 * |---------------------------|-----------------------------------------------------------|
 * | payer.name / identifiers  | 2100A NM1*PR (payer name, payer id: NM108 `PI`/`XV`)      |
 * | subscriber.memberId       | 2100C NM1*IL NM109 (member identification number)        |
 * | subscriber name/birth/sex | 2100C NM1*IL, DMG (D8 birth date, gender)                 |
 * | dependent                 | 2100D NM1*03, DMG, INS (relationship), when not the subscriber |
 * | group / plan              | 2100C REF*6P (group number) / REF*18 (plan number)        |
 * | serviceDate               | 2100C DTP*291 (plan / eligibility date)                   |
 * | categories                | 2110C EQ01 service type codes (EQ*30 = health benefit plan coverage) |
 *
 * | EligibilityAnswer         | X12 271                                                   |
 * |---------------------------|-----------------------------------------------------------|
 * | inforce                   | EB01 `1` (active coverage) vs `6` (inactive)              |
 * | items[].covered           | EB01 per EB03 service type (`I` non-covered)              |
 * | benefit deductible        | EB01 `C` with EB07 amount (remaining: EB06 `29`)          |
 * | benefit copay             | EB01 `B` with EB07 amount                                 |
 * | benefit coinsurance       | EB01 `A` with EB08 percent                                |
 * | errors                    | AAA segments (AAA03 reject reason, e.g. `72` invalid member id, `75` subscriber not found) |
 *
 * An adapter answers a query or throws for a transport failure (the operation then answers 502 and stores
 * nothing); a payer's "no" (unknown member, terminated plan) is an answer with errors, which is stored.
 */
export interface PayerAdapter {
  /** The code a payor Organization names it by (its `payer-adapter` extension), e.g. `local-rules`, `x12-270`. */
  readonly kind: string;
  check(query: EligibilityQuery): Promise<EligibilityAnswer>;
}

export interface PersonInQuery {
  name?: HumanName;
  birthDate?: string;
  gender?: string;
}

export interface EligibilityQuery {
  payer: { reference: string; name?: string; identifiers: Identifier[]; organization: Organization };
  subscriber: PersonInQuery & { memberId: string };
  /** The patient when they are not the subscriber (a dependent), with Coverage.relationship's code. */
  dependent?: PersonInQuery & { relationship?: string };
  group?: string;
  plan?: string;
  /** The day the eligibility is asked for (YYYY-MM-DD). */
  serviceDate: string;
  /** Benefit categories asked about (http://terminology.hl7.org/CodeSystem/ex-benefitcategory), never empty. */
  categories: Coding[];
  /** The Coverage as stored, for adapters that need more than the fields above. */
  coverage: Coverage;
}

export type BenefitKind = 'deductible' | 'copay' | 'coinsurance';

export interface BenefitAnswer {
  kind: BenefitKind;
  /** deductible: what remains to be paid by the patient first; copay: per visit. */
  money?: Money;
  /** coinsurance: percent (0-100) of the remainder the patient pays. */
  percent?: number;
}

export interface EligibilityAnswer {
  inforce: boolean;
  benefitPeriod?: Period;
  /** One per category asked, in the same order. */
  items: { category: Coding; covered: boolean; benefits: BenefitAnswer[] }[];
  /** The payer's rejections (AAA): the response is stored with outcome `error`. */
  errors?: { code: string; display: string }[];
  disposition?: string;
}

/** The adapters the server knows, looked up by the kind a payor Organization names. */
export class PayerAdapters {
  private readonly byKind = new Map<string, PayerAdapter>();

  constructor(adapters: PayerAdapter[]) {
    for (const a of adapters) this.byKind.set(a.kind, a);
  }

  get(kind: string): PayerAdapter | undefined {
    return this.byKind.get(kind);
  }

  kinds(): string[] {
    return [...this.byKind.keys()];
  }
}
