import type { AccountKind } from '../auth/access-policy.js';

/**
 * The guide's appointment states as FHIR Appointment.status:
 *   scheduled → pending (booked by the patient, awaiting the practitioner's confirmation)
 *   confirmed → booked · in_progress → arrived · completed → fulfilled · cancelled → cancelled · no_show → noshow
 * A held slot is an Appointment in `proposed` until booked or released.
 */
export type AppointmentStatus = 'proposed' | 'pending' | 'booked' | 'arrived' | 'fulfilled' | 'cancelled' | 'noshow';

export type Action = 'book' | 'confirm' | 'arrive' | 'complete' | 'cancel' | 'noshow' | 'reschedule';

/** Who may act: the appointment's own patient, its own practitioner, an administrator, the server's jobs. */
export type Actor = 'patient' | 'practitioner' | 'admin' | 'system';

interface Transition {
  from: AppointmentStatus[];
  to: AppointmentStatus | 'same';
  by: Actor[];
}

/**
 * The guide's transition table, with the roles it names: scheduled → confirmed | cancelled, confirmed →
 * in_progress | cancelled, in_progress → completed | cancelled; completed and cancelled are final. Patients
 * may only cancel (their own), practitioners act on their own appointments, administrators on any (a hospital
 * administrator on those at their organization). No-show marking comes from the guide's status list and the
 * no-show job; holds (`proposed`) and rescheduling are this product's additions.
 */
export const TRANSITIONS: Record<Action, Transition> = {
  book: { from: ['proposed'], to: 'pending', by: ['patient', 'practitioner', 'admin', 'system'] },
  confirm: { from: ['pending'], to: 'booked', by: ['practitioner', 'admin'] },
  arrive: { from: ['booked'], to: 'arrived', by: ['practitioner', 'admin'] },
  complete: { from: ['arrived'], to: 'fulfilled', by: ['practitioner', 'admin'] },
  cancel: { from: ['proposed', 'pending', 'booked', 'arrived'], to: 'cancelled', by: ['patient', 'practitioner', 'admin', 'system'] },
  noshow: { from: ['booked', 'pending'], to: 'noshow', by: ['practitioner', 'admin', 'system'] },
  reschedule: { from: ['pending', 'booked'], to: 'same', by: ['patient', 'practitioner', 'admin'] },
};

/** Statuses that hold a slot. */
export const ACTIVE: AppointmentStatus[] = ['proposed', 'pending', 'booked', 'arrived'];

/** The actor a caller is for one appointment: its own patient or practitioner, or an administrator. */
export function actorFor(role: AccountKind | undefined, fhirUser: string | undefined, participants: string[], backend: boolean): Actor | undefined {
  if (backend) return 'admin'; // a backend client with system/ scopes acts for the organization
  if (role === 'system-admin' || role === 'hospital-admin') return 'admin';
  if (!fhirUser || !participants.includes(fhirUser)) return undefined;
  return role === 'patient' ? 'patient' : role === 'practitioner' ? 'practitioner' : undefined;
}
