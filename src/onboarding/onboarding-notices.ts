import type { Patient } from '@medplum/fhirtypes';
import type { Logger } from '../infra/logger.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { isOperationOutcomeError } from '../fhir/outcomes.js';
import type { JobDefinition, JobQueue } from '../jobs/job-queue.js';
import type { Delivery, NotificationService } from '../notifications/notification-service.js';
import { onboardingCompleteEmail, onboardingWelcomeEmail } from '../notifications/care-templates.js';
import { ITEM_LABELS, onboardingStatus, type OnboardingStatus } from './onboarding-status.js';

export const ONBOARDING_JOB = 'onboarding-check';

const given = (p: unknown) => (p as Patient | undefined)?.name?.[0]?.given?.[0];

/** Queues a look at a patient's onboarding (one pending job per patient: a burst of writes is looked at once). */
export async function queueOnboardingCheck(jobs: JobQueue, patientId: string): Promise<void> {
  await jobs.scheduleUnique(ONBOARDING_JOB, `onboarding:Patient/${patientId}`, new Date(), { patient: patientId });
}

export interface OnboardingMail {
  welcome: Delivery['status'];
  complete?: Delivery['status'];
}

/**
 * Sends what the patient's onboarding calls for, each e-mail once ever (delivery ledger keys): the welcome
 * with what is still missing when the first item is recorded, and the completion notice when every item is
 * complete. Looking again (another write, a retried job, `$onboarding-status`) sends nothing new.
 */
export async function sendOnboardingMail(notifications: NotificationService, status: OnboardingStatus): Promise<OnboardingMail> {
  const started = status.items.some((i) => i.complete);
  const missing = status.items.filter((i) => !i.complete).map((i) => ITEM_LABELS[i.item]);
  const welcome = started || status.complete
    ? await notifications.emailOnce(status.patient, 'onboarding-welcome', (p) => onboardingWelcomeEmail({ name: given(p), missing }))
    : 'off';
  if (!status.complete) return { welcome };
  const complete = await notifications.emailOnce(status.patient, 'onboarding-complete', (p) => onboardingCompleteEmail({ name: given(p) }));
  return { welcome, complete };
}

/** The job: the status from the server's repository, then the e-mails it calls for. */
export function onboardingJob(deps: { repo: FhirRepository; notifications: NotificationService; logger: Logger }): JobDefinition {
  return {
    name: ONBOARDING_JOB,
    maxRetries: 6,
    retryDelayMs: 10_000,
    handler: async (data) => {
      let status: OnboardingStatus;
      try {
        status = await onboardingStatus(deps.repo, String(data.patient));
      } catch (err) {
        if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) return; // the patient is gone
        throw err;
      }
      const sent = await sendOnboardingMail(deps.notifications, status);
      deps.logger.debug({ patient: status.patient, complete: status.complete, sent }, 'onboarding looked at');
    },
  };
}
