import type { Appointment } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir/storage/repository.js';

/** Appointments handled per run; the job runs again soon, so a backlog drains over a few runs. */
const BATCH = 500;

/**
 * The no-show job's work: booked appointments whose end (or start, without an end) plus `graceMinutes` has
 * passed without arrival become `noshow` (R4 Appointment.status; an arrival would have moved them to
 * `arrived`). Each write is conditional on the version read (If-Match), so a practitioner's `$arrive` at the
 * same moment wins and the appointment is left alone. Returns the ids marked.
 */
export async function markNoShows(repo: FhirRepository, graceMinutes: number, now = new Date()): Promise<string[]> {
  const cutoff = now.getTime() - graceMinutes * 60_000;
  // `date` is Appointment.start (R4 has no search on end): start <= end, so this finds every candidate.
  const candidates = await repo.findByCriteria('Appointment', `status=booked&date=lt${new Date(cutoff).toISOString()}`, BATCH);
  const marked: string[] = [];
  for (const v of candidates) {
    const a = JSON.parse(v.json!) as Appointment;
    const ends = Date.parse(a.end ?? a.start ?? '');
    if (a.status !== 'booked' || Number.isNaN(ends) || ends > cutoff) continue;
    // Participant statuses stay: R4 has no participant status for "did not come"; Appointment.status says it.
    const next: Appointment = { ...a, status: 'noshow' };
    try {
      await repo.update(next, { ifMatch: v.versionId });
      marked.push(v.id);
    } catch (err) {
      if ((err as { status?: number }).status !== 412) throw err; // 412: changed meanwhile (arrived, cancelled)
    }
  }
  return marked;
}
