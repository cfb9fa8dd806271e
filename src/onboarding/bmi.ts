import type { Observation, Quantity } from '@medplum/fhirtypes';
import { errors } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import { referenceId } from '../write-guards.js';
import { BMI, HEIGHT, LOINC, WEIGHT } from './onboarding-status.js';

const UCUM = 'http://unitsofmeasure.org';
/** Identifies the one computed BMI per patient (the server keeps it current). */
export const COMPUTED_BMI_SYSTEM = 'http://medivoy.example/fhir/computed-bmi';

const hasCode = (o: Observation, code: string) => !!o.code?.coding?.some((c) => c.system === LOINC && c.code === code);
export const isHeightOrWeight = (o: Observation) => hasCode(o, HEIGHT) || hasCode(o, WEIGHT);

/** Metres from a height quantity in UCUM cm, m, [in_i] (or the same written as unit); undefined when not a length. */
export function metres(q: Quantity | undefined): number | undefined {
  const unit = q?.code ?? q?.unit;
  if (typeof q?.value !== 'number') return undefined;
  const factor = ({ cm: 0.01, m: 1, mm: 0.001, '[in_i]': 0.0254, in: 0.0254 } as Record<string, number>)[unit ?? ''];
  return factor ? q.value * factor : undefined;
}

/** Kilograms from a weight quantity in UCUM kg, g, [lb_av]; undefined when not a mass. */
export function kilograms(q: Quantity | undefined): number | undefined {
  const unit = q?.code ?? q?.unit;
  if (typeof q?.value !== 'number') return undefined;
  const factor = ({ kg: 1, g: 0.001, '[lb_av]': 0.45359237, lb: 0.45359237 } as Record<string, number>)[unit ?? ''];
  return factor ? q.value * factor : undefined;
}

/** BMI in kg/m², one decimal. */
export function bmiOf(heightM: number, weightKg: number): number {
  return Math.round((weightKg / (heightM * heightM)) * 10) / 10;
}

/** Plausible human ranges: a value outside them is a typo (or the wrong unit), refused before it is stored. */
export function checkMeasurement(o: Observation): void {
  if (!isHeightOrWeight(o) || o.status === 'entered-in-error') return;
  if (hasCode(o, HEIGHT)) {
    const m = metres(o.valueQuantity);
    if (m === undefined) throw errors.businessRule('A body height needs valueQuantity in cm, m or [in_i] (UCUM)', ['Observation.valueQuantity']);
    if (m < 0.2 || m > 2.8) throw errors.businessRule(`A body height of ${o.valueQuantity!.value} ${o.valueQuantity!.code ?? o.valueQuantity!.unit} is not plausible`, ['Observation.valueQuantity']);
  } else {
    const kg = kilograms(o.valueQuantity);
    if (kg === undefined) throw errors.businessRule('A body weight needs valueQuantity in kg, g or [lb_av] (UCUM)', ['Observation.valueQuantity']);
    if (kg < 0.2 || kg > 700) throw errors.businessRule(`A body weight of ${o.valueQuantity!.value} ${o.valueQuantity!.code ?? o.valueQuantity!.unit} is not plausible`, ['Observation.valueQuantity']);
  }
}

const when = (o: Observation) => o.effectiveDateTime ?? o.effectivePeriod?.end ?? o.effectivePeriod?.start ?? o.issued ?? o.meta?.lastUpdated ?? '';

/**
 * After a height or weight was written (in the same unit of work): the patient's BMI Observation from
 * their latest height and weight, created or brought up to date (one per patient, found by its identifier),
 * `derivedFrom` both, written with the writer's access. Nothing when either is missing; an unchanged BMI
 * writes no new version.
 */
export async function updateBmi(tx: FhirRepository, system: FhirRepository, written: Observation): Promise<void> {
  const patientId = referenceId(written.subject, 'Patient');
  if (!patientId || !isHeightOrWeight(written)) return;
  const subject = `Patient/${patientId}`;
  // Looked up with the server's repository (the writer may create Observations without searching them);
  // the version just written is taken as written, since it may not be committed yet.
  const latest = async (code: string) =>
    [...(await system.findByCriteria('Observation', `subject=${subject}&code=${LOINC}|${code}`, 100)).map((v) => parseResource(v) as Observation).filter((o) => o.id !== written.id), ...(hasCode(written, code) ? [written] : [])]
      .filter((o) => o.status !== 'entered-in-error' && o.status !== 'cancelled')
      .sort((a, b) => when(b).localeCompare(when(a)) || (b.meta?.lastUpdated ?? '').localeCompare(a.meta?.lastUpdated ?? ''))[0];
  const [height, weight] = await Promise.all([latest(HEIGHT), latest(WEIGHT)]);
  const m = metres(height?.valueQuantity);
  const kg = kilograms(weight?.valueQuantity);
  if (!height || !weight || m === undefined || kg === undefined) return;
  const value = bmiOf(m, kg);
  const identifier = `${COMPUTED_BMI_SYSTEM}|${subject}`;
  const existing = (await system.findByCriteria('Observation', `identifier=${encodeURIComponent(identifier)}`, 1)).map((v) => parseResource(v) as Observation)[0];
  const derivedFrom = [{ reference: `Observation/${height.id}` }, { reference: `Observation/${weight.id}` }];
  if (existing && existing.valueQuantity?.value === value && JSON.stringify(existing.derivedFrom) === JSON.stringify(derivedFrom)) return;
  const effective = [when(height), when(weight)].sort().pop();
  const bmi: Observation = {
    resourceType: 'Observation',
    ...(existing ? { id: existing.id } : {}),
    identifier: [{ system: COMPUTED_BMI_SYSTEM, value: subject }],
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs', display: 'Vital Signs' }] }],
    code: { coding: [{ system: LOINC, code: BMI, display: 'Body mass index (BMI) [Ratio]' }], text: 'BMI' },
    subject: { reference: subject },
    ...(effective ? { effectiveDateTime: effective } : {}),
    valueQuantity: { value, unit: 'kg/m2', system: UCUM, code: 'kg/m2' },
    derivedFrom,
    note: [{ text: 'Computed by the server from the latest body height and weight' }],
  };
  if (existing) await tx.update(bmi);
  else await tx.create(bmi);
}
