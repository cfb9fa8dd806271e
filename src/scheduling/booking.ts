import { randomBytes, randomUUID } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import type { Appointment, Encounter, PractitionerRole, Schedule, Slot } from '@medplum/fhirtypes';
import { errors } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource, type ResourceVersion } from '../fhir/storage/types.js';
import { isDuplicateKey } from '../fhir/storage/mongo/version-writer.js';
import type { AccessContext } from '../auth/access-policy.js';
import { ACTIVE, TRANSITIONS, actorFor, type Action, type AppointmentStatus } from './appointment-lifecycle.js';
import { SlotClaims, type SlotClaim } from './slot-claims.js';

export const BOOKING_REFERENCE_SYSTEM = 'http://medivoy.example/fhir/booking-reference';
export const HOLD_EXPIRES_URL = 'http://medivoy.example/fhir/StructureDefinition/hold-expires';
export const CANCELLATION_URL = 'http://medivoy.example/fhir/StructureDefinition/cancellation';
const VERIFICATION_URL = 'http://medivoy.example/fhir/StructureDefinition/verification-status';

export interface BookingOptions {
  holdMs: number;
  /** How far ahead a slot may be booked. */
  horizonDays: number;
  /** Patients may cancel until this long before the start. */
  cancelCutoffMs: number;
  /**
   * A booked slot claim this old whose appointment is gone (or no longer on that slot, or cancelled) is a
   * leftover of a process that died mid-booking, and the next booking takes the slot over. Default 5 minutes:
   * far longer than any booking request runs.
   */
  orphanClaimMs?: number;
}

/** Side effects after a booking change commits (reminders, e-mails); failures are logged, never undo the booking. */
export interface BookingHooks {
  booked?(appointment: Appointment): Promise<void>;
  cancelled?(appointment: Appointment): Promise<void>;
  rescheduled?(appointment: Appointment): Promise<void>;
  /** After a hold is stored (e.g. billing issues the invoice to pay before booking). */
  held?(appointment: Appointment): Promise<void>;
}

/**
 * Checks before a held appointment is booked, passed in by the composition root (e.g. billing: the invoice must be
 * paid first). Unlike the hooks, a gate that throws refuses the booking; the hold stays as it was.
 */
export interface BookingGate {
  beforeBookHeld(appointment: Appointment): Promise<void>;
}

/** The caller of a booking operation: their scoped repository and who they are. */
export interface Caller {
  repo: FhirRepository;
  access: AccessContext;
}

type Lock = { _id: string; exp: Date };
type ReferenceClaim = { _id: string; appointment: string };

/**
 * Booking without double booking, on MongoDB and FerretDB alike: the slot claim (a unique key) decides who
 * gets a slot; the caller's own repository checks they may see the patient and create the appointment; the
 * server's repository then writes the parts the caller may not touch directly (the Slot's status).
 */
export class BookingService {
  readonly claims: SlotClaims;
  private readonly locks: Collection<Lock>;
  private readonly references: Collection<ReferenceClaim>;

  constructor(
    db: Db,
    /** The server's own repository (no caller scope): Slot status, Encounters, jobs. */
    private readonly system: FhirRepository,
    private readonly opts: BookingOptions,
    public hooks: BookingHooks = {},
    public gate?: BookingGate,
  ) {
    this.claims = new SlotClaims(db, { afterMs: opts.orphanClaimMs ?? 5 * 60_000, check: (claim) => this.orphaned(claim) });
    this.locks = db.collection<Lock>('booking_locks');
    this.references = db.collection<ReferenceClaim>('booking_references');
  }

  /** A claim whose appointment does not exist, does not name its slot, or was cancelled holds nothing. */
  private async orphaned(claim: SlotClaim): Promise<boolean> {
    let appointment: Appointment;
    try {
      appointment = parseResource(await this.system.read('Appointment', idOf(claim.appointment, 'Appointment'))) as Appointment;
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 404 || status === 410) return true;
      throw err;
    }
    return !appointment.slot?.some((s) => s.reference === claim._id) || ['cancelled', 'entered-in-error'].includes(appointment.status);
  }

  /** `$hold`: the slot is reserved for a few minutes as a `proposed` Appointment. */
  hold(caller: Caller, slotRef: string, patientRef?: string, posted?: { base: Appointment; id?: string }): Promise<Appointment> {
    return this.reserve(caller, slotRef, patientRef, 'hold', undefined, posted?.id, posted?.base);
  }

  /** `$book` (or POST Appointment with a Slot): the slot is taken and the Appointment `pending` confirmation. */
  async book(caller: Caller, input: { slot?: string; appointment?: string; patient?: string; description?: string; id?: string; base?: Appointment }): Promise<Appointment> {
    if (input.appointment) return this.bookHeld(caller, input.appointment);
    if (!input.slot) throw errors.badRequest('$book needs a slot (Slot/id) or a held appointment');
    return this.reserve(caller, input.slot, input.patient, 'book', input.description, input.id, input.base);
  }

  async versionOf(appointmentId: string): Promise<ResourceVersion> {
    return this.system.read('Appointment', appointmentId);
  }

  /**
   * Holds or books a slot. `base` is an Appointment a client posted (an EHR's request): it is kept as sent, with
   * what the booking needs added (the slot's times when missing, the practitioner role, the booking reference,
   * the hold's expiry); a posted `booked` stays booked, everything else booked is `pending` confirmation.
   */
  private async reserve(caller: Caller, slotRef: string, patientRef: string | undefined, mode: 'hold' | 'book', description?: string, presetId?: string, base?: Appointment): Promise<Appointment> {
    const slotId = idOf(slotRef, 'Slot');
    const slot = parseResource(await caller.repo.read('Slot', slotId)) as Slot;
    if (slot.status !== 'free') throw errors.conflict(`Slot/${slotId} is not free (${slot.status})`);
    const start = Date.parse(slot.start);
    if (!(start > Date.now())) throw errors.conflict('The slot has already started');
    if (start > Date.now() + this.opts.horizonDays * 86400_000) throw errors.conflict(`Slots can be booked at most ${this.opts.horizonDays} days ahead`);
    const { role, location } = await this.bookableRole(slot);
    const patient = await this.patientFor(caller, patientRef);

    const id = presetId ?? randomUUID();
    if (base && ((base.start && Date.parse(base.start) !== start) || (base.end && Date.parse(base.end) !== Date.parse(slot.end)))) {
      throw errors.badRequest(`The appointment's start and end must be those of Slot/${slotId} (${slot.start} to ${slot.end})`);
    }
    const computed: Appointment = {
      resourceType: 'Appointment',
      id,
      status: mode === 'hold' ? 'proposed' : base?.status === 'booked' ? 'booked' : 'pending',
      slot: [{ reference: `Slot/${slotId}` }],
      start: slot.start,
      end: slot.end,
      created: new Date().toISOString(),
      ...(description ? { description } : {}),
      ...(role.specialty ? { specialty: role.specialty } : {}),
      participant: [
        { actor: { reference: patient }, status: 'accepted', required: 'required' },
        { actor: { reference: `PractitionerRole/${role.id}` }, status: 'needs-action', required: 'required' },
        ...(role.practitioner?.reference ? [{ actor: { reference: role.practitioner.reference }, status: 'needs-action' as const, required: 'required' as const }] : []),
        ...(location ? [{ actor: { reference: location }, status: 'accepted' as const, required: 'information-only' as const }] : []),
      ],
      ...(mode === 'hold' ? { extension: [{ url: HOLD_EXPIRES_URL, valueInstant: new Date(Date.now() + this.opts.holdMs).toISOString() }] } : {}),
    };
    const appointment = base ? mergePosted(base, computed) : computed;
    return this.withPatientLock(patient, async () => {
      await this.noOverlap(patient, slot.start, slot.end);
      if (!(await this.claims.claim(`Slot/${slotId}`, `Appointment/${id}`, mode === 'hold' ? 'hold' : 'booked', this.opts.holdMs))) {
        throw errors.conflict(`Slot/${slotId} was just taken by another booking`);
      }
      let stored: Appointment;
      try {
        appointment.identifier = [...(base?.identifier ?? []), { system: BOOKING_REFERENCE_SYSTEM, value: await this.uniqueReference(id) }];
        // The caller's repository: a patient may only create appointments in their own compartment.
        ownCreates.add(appointment);
        stored = parseResource((await caller.repo.create(appointment, { id })).version) as Appointment;
        // A request stalled past the orphan age may have lost its claim to a takeover: then it is not booked.
        if (!(await this.claims.holds(`Slot/${slotId}`, `Appointment/${id}`))) {
          await this.system.update({ ...stored, status: 'cancelled', cancelationReason: { text: 'The slot was taken over while this booking stalled' } }).catch(() => undefined);
          throw errors.conflict(`Slot/${slotId} was just taken by another booking`);
        }
      } catch (err) {
        await this.references.deleteMany({ appointment: `Appointment/${id}` }).catch(() => undefined);
        await this.claims.release(`Slot/${slotId}`, `Appointment/${id}`);
        throw err;
      }
      await this.setSlotStatus(slotId, mode === 'hold' ? 'busy-tentative' : 'busy');
      if (mode === 'book') await this.hooks.booked?.(stored).catch(() => undefined);
      else await this.hooks.held?.(stored).catch(() => undefined);
      return stored;
    });
  }

  private async bookHeld(caller: Caller, appointmentRef: string): Promise<Appointment> {
    const { appointment, version } = await this.readOwn(caller, appointmentRef);
    if (appointment.status !== 'proposed') throw errors.conflict(`Appointment/${appointment.id} is ${appointment.status}, not held`);
    await this.gate?.beforeBookHeld(appointment);
    const slotRef = appointment.slot?.[0]?.reference;
    if (!slotRef || !(await this.claims.confirmHold(slotRef, `Appointment/${appointment.id}`))) {
      throw errors.conflict('The hold has lapsed and the slot was taken; choose another slot');
    }
    const next: Appointment = { ...appointment, status: 'pending', extension: appointment.extension?.filter((e) => e.url !== HOLD_EXPIRES_URL) };
    let stored: Appointment;
    try {
      stored = parseResource((await this.system.update(next, { ifMatch: version })).version) as Appointment;
    } catch (err) {
      // Changed meanwhile (e.g. the lapsed hold was cancelled): give back the claim this booking took.
      await this.claims.release(slotRef, `Appointment/${appointment.id}`);
      if ((err as { status?: number }).status === 412) throw errors.conflict('The hold was released meanwhile; choose a slot again');
      throw err;
    }
    await this.setSlotStatus(idOf(slotRef, 'Slot'), 'busy');
    await this.hooks.booked?.(stored).catch(() => undefined);
    return stored;
  }

  /** A lifecycle step (`$confirm`, `$arrive`, `$complete`, `$cancel`, `$noshow`) along the guide's table. */
  async transition(caller: Caller | 'system', appointmentRef: string, action: Exclude<Action, 'book' | 'reschedule'>, reason?: string, onlyFrom?: AppointmentStatus[]): Promise<Appointment> {
    const { appointment, version } = caller === 'system' ? await this.readSystem(appointmentRef) : await this.readOwn(caller, appointmentRef);
    if (onlyFrom && !onlyFrom.includes(appointment.status as AppointmentStatus)) return appointment;
    await this.authorize(caller, appointment, action);
    const rule = TRANSITIONS[action];
    const status = appointment.status as AppointmentStatus;
    if (!rule.from.includes(status)) throw errors.conflict(`An appointment that is ${status} cannot be ${DONE[action]}`);
    if (action === 'cancel' && caller !== 'system' && actorOf(caller, appointment) === 'patient' && Date.parse(appointment.start!) - Date.now() < this.opts.cancelCutoffMs) {
      throw errors.conflict(`Patients can cancel up to ${Math.round(this.opts.cancelCutoffMs / 3600_000)} h before the start; contact the practice`);
    }
    const next: Appointment = { ...appointment, status: rule.to as Appointment['status'] };
    if (action === 'confirm') next.participant = appointment.participant.map((p) => (p.status === 'needs-action' ? { ...p, status: 'accepted' } : p));
    if (action === 'cancel') {
      next.cancelationReason = { text: reason ?? 'Cancelled' };
      next.extension = [
        ...(appointment.extension ?? []).filter((e) => e.url !== CANCELLATION_URL && e.url !== HOLD_EXPIRES_URL),
        { url: CANCELLATION_URL, extension: [{ url: 'by', valueString: caller === 'system' ? 'system' : (caller.access.fhirUser ?? caller.access.clientId) }, { url: 'at', valueDateTime: new Date().toISOString() }] },
      ];
    }
    // The stored version (new versionId, lastUpdated) is what the caller gets and what the notices read.
    const stored = parseResource(
      (
        await this.system.update(next, { ifMatch: version }).catch((err) => {
          if ((err as { status?: number }).status === 412) throw errors.conflict('The appointment was changed meanwhile; reload it and try again');
          throw err;
        })
      ).version,
    ) as Appointment;
    const slotRef = appointment.slot?.[0]?.reference;
    if ((action === 'cancel' || action === 'noshow') && slotRef) {
      // Only a slot this appointment still held is freed: a lapsed hold may have been taken over by another booking.
      const released = await this.claims.release(slotRef, `Appointment/${appointment.id}`);
      if (action === 'cancel' && released && Date.parse(appointment.start!) > Date.now()) await this.setSlotStatus(idOf(slotRef, 'Slot'), 'free');
      await this.hooks.cancelled?.(stored).catch(() => undefined);
    }
    if (action === 'arrive') await this.openEncounter(next);
    if (action === 'complete' || (action === 'cancel' && appointment.status === 'arrived')) await this.closeEncounter(next);
    return stored;
  }

  /** `$reschedule`: moves to another free slot atomically (the new slot is claimed before the old is freed). */
  async reschedule(caller: Caller, appointmentRef: string, newSlotRef: string): Promise<Appointment> {
    const { appointment, version } = await this.readOwn(caller, appointmentRef);
    await this.authorize(caller, appointment, 'reschedule');
    if (!TRANSITIONS.reschedule.from.includes(appointment.status as AppointmentStatus)) throw errors.conflict(`An appointment that is ${appointment.status} cannot be rescheduled`);
    const newId = idOf(newSlotRef, 'Slot');
    const slot = parseResource(await caller.repo.read('Slot', newId)) as Slot;
    if (slot.status !== 'free') throw errors.conflict(`Slot/${newId} is not free`);
    if (!(Date.parse(slot.start) > Date.now())) throw errors.conflict('The new slot has already started');
    await this.bookableRole(slot);
    const ref = `Appointment/${appointment.id}`;
    if (!(await this.claims.claim(`Slot/${newId}`, ref, 'booked'))) throw errors.conflict(`Slot/${newId} was just taken by another booking`);
    const next: Appointment = { ...appointment, slot: [{ reference: `Slot/${newId}` }], start: slot.start, end: slot.end };
    let stored: Appointment;
    try {
      stored = parseResource((await this.system.update(next, { ifMatch: version })).version) as Appointment;
    } catch (err) {
      await this.claims.release(`Slot/${newId}`, ref);
      if ((err as { status?: number }).status === 412) throw errors.conflict('The appointment was changed meanwhile; reload it and try again');
      throw err;
    }
    await this.setSlotStatus(newId, 'busy');
    const old = appointment.slot?.[0]?.reference;
    if (old) {
      await this.claims.release(old, ref);
      await this.setSlotStatus(idOf(old, 'Slot'), 'free');
    }
    await this.hooks.rescheduled?.(stored).catch(() => undefined);
    return stored;
  }

  /** Releases holds whose time ran out: the Slot is free again, the proposed Appointment cancelled. */
  async releaseLapsedHolds(): Promise<number> {
    let n = 0;
    for (const claim of await this.claims.lapsedHolds()) {
      const del = await this.claims.col.deleteOne({ _id: claim._id, appointment: claim.appointment, state: 'hold' });
      if (!del.deletedCount) continue;
      // Only a hold that is still a hold is cancelled: a booking of it that re-claimed the slot meanwhile stands
      // (its update and this cancellation are ordered by the appointment's version).
      const cancelled = await this.transition('system', claim.appointment, 'cancel', 'The hold expired', ['proposed']).catch(() => undefined);
      if (cancelled?.status !== 'cancelled') continue;
      if (!(await this.claims.holder(claim._id))) await this.setSlotStatus(idOf(claim._id, 'Slot'), 'free').catch(() => undefined);
      n++;
    }
    return n;
  }

  // ------------------------------------------------------------------------------------------------

  private async authorize(caller: Caller | 'system', appointment: Appointment, action: Action): Promise<void> {
    if (caller === 'system') return;
    const actor = actorOf(caller, appointment);
    if (!actor || !TRANSITIONS[action].by.includes(actor)) {
      throw errors.forbidden(`${actor ? `A ${actor}` : 'This caller'} cannot ${action} this appointment`);
    }
    if (caller.access.role === 'hospital-admin' && !caller.access.scopes.some((s) => s.context === 'system')) {
      const org = await this.organizationOf(appointment);
      if (!org || org !== caller.access.organization) {
        throw errors.forbidden(`A hospital administrator acts on appointments at their own organization (${caller.access.organization ?? 'none'}), not at ${org ?? 'an unknown one'}`);
      }
    }
  }

  /** The organization an appointment is at: its PractitionerRole's, else its Location's managing organization. */
  private async organizationOf(a: Appointment): Promise<string | undefined> {
    const read = async (type: string): Promise<Record<string, any> | undefined> => {
      const ref = a.participant.find((p) => p.actor?.reference?.startsWith(`${type}/`))?.actor?.reference;
      if (!ref) return undefined;
      try {
        return parseResource(await this.system.read(type, idOf(ref, type))) as Record<string, any>;
      } catch {
        return undefined; // a deleted role or location: no organization to match
      }
    };
    const role = await read('PractitionerRole');
    if (role?.organization?.reference) return role.organization.reference as string;
    return (await read('Location'))?.managingOrganization?.reference as string | undefined;
  }

  private async readOwn(caller: Caller, ref: string): Promise<{ appointment: Appointment; version: string }> {
    const v = await caller.repo.read('Appointment', idOf(ref, 'Appointment'));
    return { appointment: parseResource(v) as Appointment, version: v.versionId };
  }

  private async readSystem(ref: string): Promise<{ appointment: Appointment; version: string }> {
    const v = await this.system.read('Appointment', idOf(ref, 'Appointment'));
    return { appointment: parseResource(v) as Appointment, version: v.versionId };
  }

  /** The Slot's role must be active and verified. */
  private async bookableRole(slot: Slot): Promise<{ role: PractitionerRole; location?: string }> {
    const schedule = parseResource(await this.system.read('Schedule', idOf(slot.schedule.reference!, 'Schedule'))) as Schedule;
    const roleRef = schedule.actor.find((a) => a.reference?.startsWith('PractitionerRole/'))?.reference;
    if (!roleRef) throw errors.conflict('This slot belongs to no practitioner role');
    const role = parseResource(await this.system.read('PractitionerRole', idOf(roleRef, 'PractitionerRole'))) as PractitionerRole;
    const verification = role.extension?.find((e) => e.url === VERIFICATION_URL)?.valueCode;
    if (role.active !== true || (verification !== undefined && verification !== 'verified')) {
      throw errors.conflict(`${roleRef} is not open for booking (not active or not verified)`);
    }
    return { role, location: schedule.actor.find((a) => a.reference?.startsWith('Location/'))?.reference };
  }

  /** The patient booked for: the caller's own, or one they may see (a practitioner's patient, any for admins). */
  private async patientFor(caller: Caller, patientRef: string | undefined): Promise<string> {
    const own = caller.access.patient ? `Patient/${caller.access.patient}` : caller.access.fhirUser?.startsWith('Patient/') ? caller.access.fhirUser : undefined;
    const ref = patientRef ?? own;
    if (!ref) throw errors.badRequest('Say which patient the appointment is for (parameter patient)');
    const id = idOf(ref, 'Patient');
    await caller.repo.read('Patient', id); // 404 outside the caller's reach
    return `Patient/${id}`;
  }

  private async noOverlap(patient: string, start: string, end: string): Promise<void> {
    const mine = await this.system.findByCriteria('Appointment', `patient=${encodeURIComponent(patient)}&status=${ACTIVE.join(',')}`, 1000);
    const s = Date.parse(start);
    const e = Date.parse(end);
    const clash = mine.map((v) => parseResource(v) as Appointment).find((a) => Date.parse(a.start!) < e && Date.parse(a.end!) > s);
    if (clash) throw errors.conflict(`${patient} already has an appointment at that time (Appointment/${clash.id})`);
  }

  /**
   * A booking reference no other appointment has: 40 random bits make a repeat likely somewhere in a million
   * bookings, so each is claimed by inserting it as a key (unique on any engine) and drawn again if taken.
   */
  private async uniqueReference(appointmentId: string): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const reference = bookingReference();
      try {
        await this.references.insertOne({ _id: reference, appointment: `Appointment/${appointmentId}` });
        return reference;
      } catch (err) {
        if (!isDuplicateKey(err) || attempt >= 5) throw err;
      }
    }
  }

  /** One booking at a time per patient, so the overlap check and the claim are not raced by a second booking. */
  private async withPatientLock<T>(patient: string, fn: () => Promise<T>): Promise<T> {
    const until = Date.now() + 15_000;
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      await this.locks.deleteOne({ _id: patient, exp: { $lt: new Date() } });
      try {
        await this.locks.insertOne({ _id: patient, exp: new Date(Date.now() + 10_000) });
        break;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        if (Date.now() > until) throw errors.conflict(`Another booking for ${patient} is in progress; retry`);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    try {
      return await fn();
    } finally {
      await this.locks.deleteOne({ _id: patient });
    }
  }

  private async setSlotStatus(slotId: string, status: Slot['status']): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const v: ResourceVersion = await this.system.read('Slot', slotId);
      const slot = parseResource(v) as Slot;
      if (slot.status === status) return;
      try {
        await this.system.update({ ...slot, status }, { ifMatch: v.versionId });
        return;
      } catch (err) {
        if ((err as { status?: number }).status !== 412) throw err;
      }
    }
  }

  private async openEncounter(a: Appointment): Promise<void> {
    const patient = a.participant.find((p) => p.actor?.reference?.startsWith('Patient/'))?.actor?.reference;
    const practitioner = a.participant.find((p) => p.actor?.reference?.startsWith('Practitioner/'))?.actor?.reference;
    const encounter: Encounter = {
      resourceType: 'Encounter',
      status: 'in-progress',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
      subject: { reference: patient },
      appointment: [{ reference: `Appointment/${a.id}` }],
      period: { start: new Date().toISOString() },
      ...(practitioner ? { participant: [{ individual: { reference: practitioner } }] } : {}),
    };
    await this.system.create(encounter, { ifNoneExist: `appointment=Appointment/${a.id}` });
  }

  private async closeEncounter(a: Appointment): Promise<void> {
    for (const v of await this.system.findByCriteria('Encounter', `appointment=Appointment/${a.id}`, 5)) {
      const e = parseResource(v) as Encounter;
      if (e.status === 'finished') continue;
      await this.system.update({ ...e, status: 'finished', period: { ...e.period, end: new Date().toISOString() } }, { ifMatch: v.versionId });
    }
  }
}

const DONE: Record<Exclude<Action, 'book' | 'reschedule'>, string> = {
  confirm: 'confirmed', arrive: 'marked arrived', complete: 'completed', cancel: 'cancelled', noshow: 'marked no-show',
};

function actorOf(caller: Caller, a: Appointment) {
  const participants = a.participant.map((p) => p.actor?.reference).filter((r): r is string => !!r);
  const backend = !caller.access.accountId && caller.access.scopes.some((s) => s.context === 'system');
  return actorFor(caller.access.role, caller.access.fhirUser ?? (caller.access.patient ? `Patient/${caller.access.patient}` : undefined), participants, backend);
}

/** The id in `id`, `Type/id` or `<absolute base>/Type/id`; anything else (other types, `..`, operators) is a 400. */
function idOf(ref: string, type: string): string {
  const m = new RegExp(`^(?:https?://[^\\s?#]+/)?(?:${type}/)?([A-Za-z0-9\\-.]{1,64})$`).exec(ref.trim());
  if (!m || /^\.+$/.test(m[1]!) || (ref.includes('/') && !ref.trim().match(new RegExp(`(?:^|/)${type}/[^/]+$`)))) throw errors.badRequest(`'${ref}' is not a ${type} reference`);
  return m[1]!;
}

/** Human-friendly, unambiguous (no 0/O, 1/I): MVY-7K3Q-9PXD. */
function bookingReference(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const bytes = randomBytes(8);
  const chars = [...bytes].map((b) => alphabet[b % alphabet.length]).join('');
  return `MVY-${chars.slice(0, 4)}-${chars.slice(4)}`;
}

/** Appointments the booking workflow itself creates (the plain-write rule lets these through). */
const ownCreates = new WeakSet<object>();

/** A posted Appointment with what the booking adds: its own elements win, participants and extensions are appended. */
function mergePosted(base: Appointment, computed: Appointment): Appointment {
  const sent = new Set((base.participant ?? []).map((p) => p.actor?.reference).filter(Boolean));
  return {
    ...computed,
    ...base,
    id: computed.id,
    status: computed.status,
    slot: computed.slot,
    start: computed.start,
    end: computed.end,
    created: base.created ?? computed.created,
    participant: [...(base.participant ?? []), ...computed.participant.filter((p) => !sent.has(p.actor?.reference))],
    ...(computed.extension || base.extension ? { extension: [...(base.extension ?? []), ...(computed.extension ?? [])] } : {}),
  };
}

/**
 * Plain writes follow the booking rules: POST Appointment (alone or in a Bundle) referencing a Slot books
 * it through the same checks as `$book`; a PUT or PATCH may not change an Appointment's status, slot or
 * time — those go through `$confirm`, `$cancel`, `$reschedule` … so their rules and side effects apply.
 */
export function bookingWriteRules(booking: BookingService, access: AccessContext): import('../auth/scoped-repository.js').WriteRules {
  return {
    async create(resource, repo, opts) {
      if (resource.resourceType !== 'Appointment' || ownCreates.has(resource)) return undefined;
      const a = resource as Appointment;
      const slot = a.slot?.[0]?.reference;
      if (!slot) return undefined; // an appointment request without a slot (e.g. status proposed) is plain data
      // EHRs post appointment requests with a Slot: `proposed` is a hold, `pending`/`booked` a booking, through the
      // same race-free claims as $hold/$book (409 only when the slot is really taken).
      const status = a.status ?? 'pending';
      if (!['proposed', 'pending', 'booked'].includes(status)) throw errors.conflict(`An appointment for a Slot is created as proposed (a hold), pending or booked, not ${status}; later steps use its operations ($confirm, $arrive, …)`);
      if (status === 'booked' && access.role === 'patient') throw errors.conflict('A patient books as pending; the practice confirms the appointment ($confirm)');
      const patient = a.participant?.find((p) => p.actor?.reference?.startsWith('Patient/'))?.actor?.reference;
      const caller = { repo, access };
      const stored = status === 'proposed'
        ? await booking.hold(caller, slot, patient, { base: a, id: opts?.id })
        : await booking.book(caller, { slot, patient, description: a.description, id: opts?.id, base: a });
      const version = await booking.versionOf(stored.id!);
      return { version, created: true };
    },
    update(current, next) {
      if (current.resourceType !== 'Appointment') return;
      for (const field of ['status', 'slot', 'start', 'end'] as const) {
        if (JSON.stringify(current[field]) !== JSON.stringify(next[field])) {
          throw errors.conflict(`An Appointment's ${field} changes through its operations ($confirm, $arrive, $complete, $cancel, $noshow, $reschedule), not by update`);
        }
      }
    },
  };
}
