import type { Appointment } from '@medplum/fhirtypes';
import type { Logger } from '../infra/logger.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { JobDefinition, JobQueue } from '../jobs/job-queue.js';
import type { AppointmentMailKind } from './appointment-templates.js';
import type { NotificationService } from './notification-service.js';
import type { Reminders } from './reminders.js';

export const NOTICE_JOB = 'appointment-notice';

/**
 * Booking confirmations and cancellation notices as jobs: queued after the booking change commits, sent with
 * retries and back-off, once per appointment version (the job key and the delivery keys carry it).
 */
export class AppointmentNotices {
  constructor(private readonly deps: { jobs: JobQueue; reminders: Reminders }) {}

  /** Queues `kind` for the appointment as it is at `versionId` (sent as soon as a job runner picks it up). */
  async notify(kind: AppointmentMailKind, appointmentRef: string, versionId: string): Promise<void> {
    const ref = appointmentRef.startsWith('Appointment/') ? appointmentRef : `Appointment/${appointmentRef}`;
    await this.deps.jobs.scheduleUnique(NOTICE_JOB, `notice:${kind}:${ref}:${versionId}`, new Date(), { appointment: ref, kind, versionId });
  }

  /**
   * Hooks in the shape the booking workflow calls after a change commits: confirmation + reminders on
   * booking, notice + no reminders on cancellation, reminders moved on reschedule.
   */
  hooks(logger: Logger) {
    const safe = (what: string, fn: (a: Appointment) => Promise<unknown>) => async (a: Appointment) => {
      try {
        await fn(a);
      } catch (err) {
        logger.error({ err, appointment: a.id }, `${what} could not be queued`); // the booking itself stands
      }
    };
    return {
      booked: safe('booking confirmation', async (a) => {
        await this.notify('booking-confirmation', `Appointment/${a.id}`, a.meta?.versionId ?? '1');
        await this.deps.reminders.scheduleReminders(`Appointment/${a.id}`, a.start!);
      }),
      cancelled: safe('cancellation notice', async (a) => {
        await this.deps.reminders.cancelReminders(`Appointment/${a.id}`);
        await this.notify('cancellation', `Appointment/${a.id}`, a.meta?.versionId ?? '1');
      }),
      rescheduled: safe('reminder move', async (a) => {
        await this.deps.reminders.rescheduleReminders(`Appointment/${a.id}`, a.start!);
      }),
    };
  }
}

/** The notice job: reads the Appointment as of the queued version and sends the notice. */
export function noticeJob(deps: { repo: FhirRepository; notifications: NotificationService }): JobDefinition {
  return {
    name: NOTICE_JOB,
    maxRetries: 6,
    retryDelayMs: 10_000,
    handler: async (data) => {
      const [, id] = String(data.appointment).split('/');
      const appointment = JSON.parse((await deps.repo.vread('Appointment', id!, String(data.versionId))).json!) as Appointment;
      await deps.notifications.notifyAppointment({ kind: data.kind as AppointmentMailKind, appointment, occasion: `v${String(data.versionId)}` });
    },
  };
}
