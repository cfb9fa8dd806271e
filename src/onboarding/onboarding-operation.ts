import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { errors } from '../fhir/outcomes.js';
import type { BusinessOperation } from '../fhir/operations/registry.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { onboardingStatus, type OnboardingStatus } from './onboarding-status.js';

/** The status as the operation answers it: `complete`, and one `item` per onboarding item with its status. */
export function statusParameters(s: OnboardingStatus): Parameters {
  const items: ParametersParameter[] = s.items.map((i) => ({
    name: 'item',
    part: [
      { name: 'code', valueCode: i.item },
      { name: 'status', valueCode: i.complete ? 'complete' : 'missing' },
      ...i.evidence.map((e) => ({ name: 'evidence', valueReference: { reference: e } })),
      ...(i.hint ? [{ name: 'hint', valueString: i.hint }] : []),
    ],
  }));
  return { resourceType: 'Parameters', parameter: [{ name: 'patient', valueReference: { reference: s.patient } }, { name: 'complete', valueBoolean: s.complete }, ...items] };
}

/**
 * `GET Patient/[id]/$onboarding-status`: for whoever may read the Patient (the patient themselves, their
 * practitioners, administrators), which onboarding items are complete and which are missing. The items are
 * looked up with the server's repository, so a caller sees the checklist (never the records' contents)
 * whatever their scopes on the recording types.
 */
export function onboardingStatusOperation(deps: { system: FhirRepository }): BusinessOperation {
  return {
    name: 'onboarding-status', levels: ['instance'], resourceTypes: ['Patient'], methods: ['GET'], affectsState: false,
    description: "What of a patient's onboarding is complete and what is missing: allergies, medications, history, height, weight, BMI, emergency contact, verified insurance.",
    parameters: [
      { name: 'return', use: 'out', min: 1, max: '1', type: 'Parameters', documentation: 'patient (Reference), complete (boolean), and one `item` per onboarding item with parts code (allergies, medications, history, height, weight, bmi, emergency-contact, insurance), status (complete | missing), evidence (Reference, repeated), hint' },
    ],
    handler: async (input, ctx) => {
      const id = input.target.id;
      if (!id) throw errors.badRequest('$onboarding-status is invoked on a patient: Patient/[id]/$onboarding-status');
      await ctx.repo.read('Patient', id); // 404 for a patient the caller may not see
      return { status: 200, resource: statusParameters(await onboardingStatus(deps.system, id)) };
    },
  };
}
