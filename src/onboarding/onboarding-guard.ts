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
 * onboarding is queued (its e-mails go out from that job, once each) — not for imports by a backend
 * integration, whose patients are not onboarding.
 */
export function onboardingGuard(deps: { system: FhirRepository; jobs: JobQueue }): WriteGuard {
  return {
    types: ['AllergyIntolerance', 'MedicationStatement', 'Condition', 'Observation', 'Patient', 'Coverage', 'CoverageEligibilityResponse'],
    async prepare(resource) {
      if (resource.resourceType === 'Observation') checkMeasurement(resource as Observation);
      return resource;
    },
    async within(stored, ctx) {
      if (stored.resourceType === 'Observation') await updateBmi(ctx.tx, deps.system, stored as Observation);
    },
    async committed(stored, access) {
      // Imports by integrations do not mail patients; an eligibility answer (from $submit) always counts.
      if (isTrustedIntegration(access) && stored.resourceType !== 'CoverageEligibilityResponse') return;
      const patient = patientOf(stored);
      if (patient) await queueOnboardingCheck(deps.jobs, patient);
    },
  };
}
