import type { Appointment } from '@medplum/fhirtypes';
import type { Logger } from '../infra/logger.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { JobDefinition, JobQueue } from '../jobs/job-queue.js';
import type { NotificationService } from './notification-service.js';

export const REMINDER_JOB = 'appointment-reminder';

/** Statuses after which a reminder makes no sense (R4 Appointment.status). */
const NO_REMINDER = new Set(['cancelled', 'noshow', 'entered-in-error', 'fulfilled', 'arrived', 'checked-in']);

/** "2 hours", "30 minutes", "10 seconds": the lead time as the e-mail says it. */
export function describeOffset(ms: number): string {
  const units: [number, string][] = [[86_400_000, 'day'], [3_600_000, 'hour'], [60_000, 'minute'], [1000, 'second']];
  for (const [size, unit] of units) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}${ms / size === 1 ? '' : 's'}`;
  }
  return `${Math.round(ms / 1000)} seconds`;
}

const toRef = (ref: string) => (ref.startsWith('Appointment/') ? ref : `Appointment/${ref}`);

/**
 * Reminder scheduling for the booking workflow: one durable job per appointment and offset (REMINDER_OFFSETS
 * before the start), keyed so that booking twice does not double them. Call these after the booking,
 * cancellation or reschedule has committed; a reminder job re-reads the Appointment anyway and skips one
 * that is no longer booked or has moved, so a missed call never sends a wrong reminder.
 */
export class Reminders {
  constructor(private readonly deps: { jobs: JobQueue; offsetsMs: number[] }) {}

  /** Schedules the reminders of `appointmentRef` (`Appointment/id`) starting at `start`; past ones are skipped. Resolves to how many. */
  async scheduleReminders(appointmentRef: string, start: string | Date): Promise<number> {
    const ref = toRef(appointmentRef);
    const startMs = new Date(start).getTime();
    if (Number.isNaN(startMs)) throw new Error(`scheduleReminders: bad start ${String(start)}`);
    let n = 0;
    for (const offset of this.deps.offsetsMs) {
      const at = startMs - offset;
      if (at <= Date.now()) continue; // a 24 h reminder for an appointment in 3 h would arrive late and confuse
      await this.deps.jobs.scheduleUnique(REMINDER_JOB, `reminder:${ref}:${offset}`, new Date(at), { appointment: ref, offset, start: new Date(startMs).toISOString() });
      n++;
    }
    return n;
  }

  /** Removes the pending reminders of an appointment (cancellation). Resolves to how many were removed. */
  cancelReminders(appointmentRef: string): Promise<number> {
    return this.deps.jobs.cancel(REMINDER_JOB, { appointment: toRef(appointmentRef) });
  }

  /** Moves the reminders to a new start (reschedule): the old ones go, the new ones follow the offsets again. */
  async rescheduleReminders(appointmentRef: string, newStart: string | Date): Promise<number> {
    await this.cancelReminders(appointmentRef);
    return this.scheduleReminders(appointmentRef, newStart);
  }
}

/** The reminder job: loads the Appointment through the repository and notifies its patients by their preferences. */
export function reminderJob(deps: { repo: FhirRepository; notifications: NotificationService; logger: Logger }): JobDefinition {
  return {
    name: REMINDER_JOB,
    maxRetries: 5,
    retryDelayMs: 30_000,
    handler: async (data) => {
      const ref = String(data.appointment);
      const [, id] = ref.split('/');
      let appointment: Appointment;
      try {
        appointment = JSON.parse((await deps.repo.read('Appointment', id!)).json!) as Appointment;
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status === 404 || status === 410) return deps.logger.info({ appointment: ref }, 'reminder skipped: the appointment is gone');
        throw err;
      }
      if (NO_REMINDER.has(appointment.status)) return deps.logger.info({ appointment: ref, status: appointment.status }, 'reminder skipped: appointment no longer booked');
      if (!appointment.start || new Date(appointment.start).getTime() !== new Date(String(data.start)).getTime()) {
        return deps.logger.warn({ appointment: ref }, 'reminder skipped: the appointment moved (rescheduleReminders was not called)');
      }
      const offset = Number(data.offset);
      await deps.notifications.notifyAppointment({ kind: 'reminder', appointment, occasion: `${String(data.start)}|${offset}`, lead: describeOffset(offset) });
    },
  };
}
