import type { Observation, Resource } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { JobQueue } from '../jobs/job-queue.js';
import { isTrustedIntegration, referenceId, type WriteGuard } from '../write-guards.js';
import { checkMeasurement, updateBmi } from './bmi.js';
import { queueOnboardingCheck } from './onboarding-notices.js';

/** The patient an onboarding record belongs to. */
function patientOf(r: Resource): string | undefined {
  const x = r as unknown as Record<string, { reference?: string } | undefined>;
  if (r.resourceType === 'Patient') return r.id;
  if (r.resourceType === 'Coverage') return referenceId(x.beneficiary, 'Patient');
  return referenceId(x.subject, 'Patient') ?? referenceId(x.patient, 'Patient');
}

/**
 * Onboarding on plain writes: height and weight must be plausible and in a known unit, and the patient's BMI
 * is computed in the same unit of work; after any onboarding record is written a look at the patient's
 * onboarding is queued (its e-mails go out from that job, once each). Imports by a backend integration
 * (isTrustedIntegration) are taken as recorded: no plausibility check, no BMI of ours beside the source's
 * own, no onboarding mail.
 */
export function onboardingGuard(deps: { system: FhirRepository; jobs: JobQueue }): WriteGuard {
  return {
    types: ['AllergyIntolerance', 'MedicationStatement', 'Condition', 'Observation', 'Patient', 'Coverage', 'CoverageEligibilityResponse'],
    // An eligibility answer (from $submit) always counts; other records of integrations are imports.
    appliesTo: (type, access) => type === 'CoverageEligibilityResponse' || !isTrustedIntegration(access),
    async prepare(resource) {
      if (resource.resourceType === 'Observation') checkMeasurement(resource as Observation);
      return resource;
    },
    async within(stored, ctx) {
      if (stored.resourceType === 'Observation') await updateBmi(ctx.tx, deps.system, stored as Observation);
    },
    async committed(stored) {
      const patient = patientOf(stored);
      if (patient) await queueOnboardingCheck(deps.jobs, patient);
    },
  };
}
