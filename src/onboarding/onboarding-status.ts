import type { CoverageEligibilityResponse, Observation, Patient, Resource } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';

export const LOINC = 'http://loinc.org';
export const HEIGHT = '8302-2';
export const WEIGHT = '29463-7';
export const BMI = '39156-5';
const CONTACT_ROLE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v2-0131';

/** The onboarding items, in the order the app shows them. */
export const ONBOARDING_ITEMS = ['allergies', 'medications', 'history', 'height', 'weight', 'bmi', 'emergency-contact', 'insurance'] as const;
export type OnboardingItem = (typeof ONBOARDING_ITEMS)[number];

export const ITEM_LABELS: Record<OnboardingItem, string> = {
  allergies: 'Allergies (or "no known allergies")',
  medications: 'Current medications (or "none")',
  history: 'Medical history',
  height: 'Height',
  weight: 'Weight',
  bmi: 'Body mass index (computed from height and weight)',
  'emergency-contact': 'Emergency contact',
  insurance: 'Insurance, verified with the insurer',
};

export interface ItemStatus {
  item: OnboardingItem;
  complete: boolean;
  /** The resources that make it complete (newest first), e.g. `Observation/12`. */
  evidence: string[];
  /** Why it is missing, when it is. */
  hint?: string;
}

export interface OnboardingStatus {
  patient: string;
  complete: boolean;
  items: ItemStatus[];
}

const ref = (r: Resource) => `${r.resourceType}/${r.id}`;
const newest = (a: Resource, b: Resource) => (b.meta?.lastUpdated ?? '').localeCompare(a.meta?.lastUpdated ?? '');

/**
 * What of the onboarding a patient has given, each item from the FHIR resources that record it: an
 * AllergyIntolerance (a "no known allergy" record counts), a MedicationStatement, a Condition, height, weight and
 * BMI Observations (LOINC 8302-2, 29463-7, 39156-5), a Patient.contact with the emergency-contact role, and an
 * active Coverage with an eligibility response that found it in force. Records entered in error do not count.
 */
export async function onboardingStatus(repo: FhirRepository, patientId: string): Promise<OnboardingStatus> {
  const subject = `Patient/${patientId}`;
  const find = async (type: string, criteria: string) =>
    (await repo.findByCriteria(type, criteria, 50)).map((v) => parseResource(v)).sort(newest);
  const patient = parseResource(await repo.read('Patient', patientId)) as Patient;
  const [allergies, medications, conditions, observations, coverages, eligibility] = await Promise.all([
    find('AllergyIntolerance', `patient=${subject}`),
    find('MedicationStatement', `subject=${subject}`),
    find('Condition', `subject=${subject}`),
    find('Observation', `subject=${subject}&code=${LOINC}|${HEIGHT},${LOINC}|${WEIGHT},${LOINC}|${BMI}`),
    find('Coverage', `beneficiary=${subject}&status=active`),
    find('CoverageEligibilityResponse', `patient=${subject}&outcome=complete`),
  ]);
  const valid = (r: Resource) => {
    const x = r as { status?: string; verificationStatus?: { coding?: { code?: string }[] } };
    return x.status !== 'entered-in-error' && !x.verificationStatus?.coding?.some((c) => c.code === 'entered-in-error');
  };
  const coded = (code: string) => observations.filter((o) => valid(o) && (o as Observation).code?.coding?.some((c) => c.system === LOINC && c.code === code));
  const contacts = (patient.contact ?? []).filter((c) => c.relationship?.some((r) => r.coding?.some((x) => x.system === CONTACT_ROLE_SYSTEM && x.code === 'C')) && (c.telecom?.length || c.name));
  const verified = coverages.filter((c) => eligibility.some((e) => {
    const ins = (e as CoverageEligibilityResponse).insurance?.[0];
    return ins?.coverage?.reference === ref(c) && ins.inforce === true;
  }));
  const item = (name: OnboardingItem, found: Resource[] | string[], hint: string): ItemStatus => {
    const evidence = found.map((f) => (typeof f === 'string' ? f : ref(f)));
    return { item: name, complete: evidence.length > 0, evidence, ...(evidence.length ? {} : { hint }) };
  };
  const items = [
    item('allergies', allergies.filter(valid), 'Record each allergy as an AllergyIntolerance, or one with code 716186003 (no known allergy)'),
    item('medications', medications.filter(valid), 'Record each current medication as a MedicationStatement (status not-taken for "none")'),
    item('history', conditions.filter(valid), 'Record past and current conditions as Condition'),
    item('height', coded(HEIGHT), `An Observation with code ${LOINC}|${HEIGHT} (body height)`),
    item('weight', coded(WEIGHT), `An Observation with code ${LOINC}|${WEIGHT} (body weight)`),
    item('bmi', coded(BMI), 'Computed by the server once height and weight are recorded'),
    item('emergency-contact', contacts.length ? [`${subject}#contact`] : [], `Patient.contact with relationship ${CONTACT_ROLE_SYSTEM}|C and a phone number`),
    item('insurance', verified, coverages.length ? 'Verify the Coverage: POST a CoverageEligibilityRequest to CoverageEligibilityRequest/$submit' : 'Record the Coverage (insurer, member id, plan) and verify it'),
  ];
  return { patient: subject, complete: items.every((i) => i.complete), items };
}
