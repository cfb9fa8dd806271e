import type { Dosage, MedicationRequest, Practitioner, Patient } from '@medplum/fhirtypes';
import { isOperationOutcomeError } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import type { JobDefinition, JobQueue } from '../jobs/job-queue.js';
import type { NotificationService } from '../notifications/notification-service.js';
import { prescriptionEmail } from '../notifications/care-templates.js';

export const PRESCRIPTION_NOTICE_JOB = 'prescription-notice';

export async function queuePrescriptionNotice(jobs: JobQueue, id: string): Promise<void> {
  await jobs.scheduleUnique(PRESCRIPTION_NOTICE_JOB, `prescription:MedicationRequest/${id}`, new Date(), { medicationRequest: id });
}

/** A dosage in words: its text, else timing and dose as coded. */
export function dosageText(d: Dosage): string {
  if (d.text) return d.text;
  const dose = d.doseAndRate?.[0]?.doseQuantity;
  const range = d.doseAndRate?.[0]?.doseRange;
  const r = d.timing?.repeat;
  const amount = dose ? `${dose.value} ${dose.unit ?? dose.code ?? ''}`.trim() : range ? `${range.low?.value}-${range.high?.value} ${range.high?.unit ?? ''}`.trim() : '';
  const timing = r?.frequency ? `${r.frequency} time(s) per ${r.period ?? 1} ${r.periodUnit ?? ''}`.trim() : d.timing?.code?.text ?? d.timing?.code?.coding?.[0]?.code ?? '';
  return [amount, timing, d.route?.text].filter(Boolean).join(', ');
}

/** The notice job: the prescription as stored, to its patient, once (delivery ledger). */
export function prescriptionNoticeJob(deps: { repo: FhirRepository; notifications: NotificationService }): JobDefinition {
  return {
    name: PRESCRIPTION_NOTICE_JOB,
    maxRetries: 6,
    retryDelayMs: 10_000,
    handler: async (data) => {
      let rx: MedicationRequest;
      try {
        rx = parseResource(await deps.repo.read('MedicationRequest', String(data.medicationRequest))) as MedicationRequest;
      } catch (err) {
        if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) return; // withdrawn (or rolled back) before the notice
        throw err;
      }
      const patient = rx.subject?.reference;
      if (!patient?.startsWith('Patient/')) return;
      let prescriber: string | undefined;
      const requester = rx.requester?.reference;
      if (requester?.startsWith('Practitioner/')) {
        const p = await deps.repo.read('Practitioner', requester.slice(13)).then((v) => parseResource(v) as Practitioner).catch(() => undefined);
        const n = p?.name?.[0];
        prescriber = n ? [n.prefix?.[0] ?? 'Dr.', n.given?.[0], n.family].filter(Boolean).join(' ') : undefined;
      }
      const medication = rx.medicationCodeableConcept?.text ?? rx.medicationCodeableConcept?.coding?.[0]?.display ?? rx.medicationReference?.display ?? 'a medication';
      await deps.notifications.emailOnce(patient, `prescription|MedicationRequest/${rx.id}`, (person) =>
        prescriptionEmail({ name: (person as Patient | undefined)?.name?.[0]?.given?.[0], medication, dosage: (rx.dosageInstruction ?? []).map(dosageText), prescriber }));
    },
  };
}
