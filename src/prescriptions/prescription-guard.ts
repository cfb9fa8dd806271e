import type { Encounter, MedicationRequest, PractitionerRole } from '@medplum/fhirtypes';
import { errors, isOperationOutcomeError } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import type { JobQueue } from '../jobs/job-queue.js';
import type { AccessContext } from '../auth/access-policy.js';
import { isTrustedIntegration, referenceId, type WriteGuard } from '../write-guards.js';
import { queuePrescriptionNotice } from './prescription-notice.js';

export const PRESCRIPTION_PROFILE = 'https://medivoy.org/fhir/StructureDefinition/medivoy-medicationrequest';

function prescriber(access: AccessContext): string {
  const me = access.role === 'practitioner' && access.fhirUser?.startsWith('Practitioner/') ? access.fhirUser : undefined;
  if (!me) throw errors.forbidden("Prescriptions are written by the practitioner of the patient's encounter (sign in as that practitioner)");
  return me;
}

/** Whether the practitioner is a participant of the encounter, directly or through one of their PractitionerRoles. */
async function takesPart(system: FhirRepository, encounter: Encounter, practitioner: string): Promise<boolean> {
  const refs = (encounter.participant ?? []).map((p) => p.individual?.reference ?? '');
  if (refs.includes(practitioner)) return true;
  for (const ref of refs.filter((r) => r.startsWith('PractitionerRole/'))) {
    const role = await system.read('PractitionerRole', ref.slice(17)).then((v) => parseResource(v) as PractitionerRole).catch(() => undefined);
    if (role?.practitioner?.reference === practitioner) return true;
  }
  return false;
}

/**
 * Prescriptions (MedicationRequest) on plain writes: only the practitioner of the patient's Encounter writes
 * one (an Encounter of that patient listing them as participant), and only they change or delete it
 * afterwards; anyone else gets 403. The product profile (profiles/medivoy-medicationrequest.json: encounter,
 * requester, authoredOn, dosage with timing and a positive dose) is claimed on every prescription, so the
 * repository's validation enforces it. A new prescription queues an e-mail notice to the patient.
 * Backend integrations (isTrustedIntegration: an EHR import) record prescriptions written elsewhere and are
 * exempt from the author rule and the profile claim; every signed-in user (patients, other practitioners,
 * administrators) and insurer clients are held to it.
 */
export function prescriptionGuard(deps: { system: FhirRepository; jobs: JobQueue }): WriteGuard {
  return {
    types: ['MedicationRequest'],
    appliesTo: (_type, access) => !isTrustedIntegration(access), // imported prescriptions were written elsewhere
    async prepare(resource, ctx) {
      const me = prescriber(ctx.access);
      const current = ctx.current as MedicationRequest | undefined;
      if (current && current.requester?.reference !== me) throw errors.forbidden(`Only the prescriber (${current.requester?.reference ?? 'unknown'}) changes this prescription`);
      const rx = resource as MedicationRequest;
      const patient = referenceId(rx.subject, 'Patient');
      if (!patient) throw errors.businessRule('MedicationRequest.subject must reference the Patient (Patient/[id])', ['MedicationRequest.subject']);
      const encounterId = referenceId(rx.encounter, 'Encounter');
      if (!encounterId) throw errors.businessRule('MedicationRequest.encounter must reference the Encounter it is written in (Encounter/[id])', ['MedicationRequest.encounter']);
      let encounter: Encounter;
      try {
        encounter = parseResource(await deps.system.read('Encounter', encounterId)) as Encounter;
      } catch (err) {
        if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) throw errors.businessRule(`The encounter Encounter/${encounterId} is not known`, ['MedicationRequest.encounter']);
        throw err;
      }
      if (encounter.subject?.reference !== `Patient/${patient}`) throw errors.businessRule(`Encounter/${encounterId} is not an encounter of Patient/${patient}`, ['MedicationRequest.encounter']);
      if (encounter.status === 'cancelled' || encounter.status === 'entered-in-error') throw errors.businessRule(`Encounter/${encounterId} is ${encounter.status}: no prescription can be written in it`, ['MedicationRequest.encounter']);
      if (!(await takesPart(deps.system, encounter, me))) {
        throw errors.forbidden(`${me} is not a participant of Encounter/${encounterId}: only the practitioner of the patient's encounter prescribes`);
      }
      if (rx.requester && rx.requester.reference !== me) throw errors.forbidden(`The requester must be the practitioner writing the prescription (${me})`);
      const profiles = rx.meta?.profile ?? [];
      return {
        ...rx,
        requester: rx.requester ?? { reference: me },
        meta: { ...rx.meta, profile: profiles.includes(PRESCRIPTION_PROFILE) ? profiles : [...profiles, PRESCRIPTION_PROFILE] },
      } as MedicationRequest;
    },
    async remove(ctx) {
      const me = prescriber(ctx.access);
      if ((ctx.current as MedicationRequest).requester?.reference !== me) throw errors.forbidden('Only the prescriber deletes a prescription');
    },
    async committed(stored) {
      if (stored.meta?.versionId === '1') await queuePrescriptionNotice(deps.jobs, stored.id!);
    },
  };
}
