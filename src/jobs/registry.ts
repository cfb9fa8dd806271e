import type { Logger } from '../infra/logger.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { NotificationService } from '../notifications/notification-service.js';
import { reminderJob } from '../notifications/reminders.js';
import { noticeJob } from '../notifications/appointment-notices.js';
import { markNoShows } from '../scheduling/mark-no-shows.js';
import type { JobDefinition } from './job-queue.js';
import { onboardingJob } from '../onboarding/onboarding-notices.js';
import { prescriptionNoticeJob } from '../prescriptions/prescription-notice.js';

export const NO_SHOW_JOB = 'mark-no-shows';

export interface RegistryDeps {
  /** The server's own repository: jobs act for the organization, not for a caller. */
  repo: FhirRepository;
  notifications: NotificationService;
  logger: Logger;
  noShowGraceMinutes: number;
  noShowEveryMs: number;
}

/** Every job type the server runs. Another module adds its jobs here (e.g. slot generation). */
export function jobDefinitions(deps: RegistryDeps, extra: JobDefinition[] = []): JobDefinition[] {
  return [
    reminderJob(deps),
    noticeJob(deps),
    {
      name: NO_SHOW_JOB,
      everyMs: deps.noShowEveryMs,
      maxRetries: 2,
      handler: async () => {
        const marked = await markNoShows(deps.repo, deps.noShowGraceMinutes);
        if (marked.length) deps.logger.info({ count: marked.length }, 'appointments marked no-show');
      },
    },
    onboardingJob(deps),
    prescriptionNoticeJob(deps),
    ...extra,
  ];
}
