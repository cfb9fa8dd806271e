import type { Location, Organization, PractitionerRole, Schedule, Slot } from '@medplum/fhirtypes';
import { errors, isOperationOutcomeError } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import { availableSlots, type Interval } from './availability-windows.js';
import { isBookable, slotMinutes, timezoneOf } from './practitioner-extensions.js';
import { isTimeZone } from './zoned-time.js';

/** Deterministic Slot identifier (`<role id>/<location id or ->/<start instant>`): makes generation idempotent. */
export const SLOT_KEY = 'http://medivoy.example/slot-key';
/** Deterministic Schedule identifier (`<role id>/<location id or ->`): one Schedule per role and location. */
export const SCHEDULE_KEY = 'http://medivoy.example/schedule-key';

/** Conditional creates in flight at once (each takes a criteria lock; a small pool keeps the engine busy, not flooded). */
const PARALLEL = 8;
const MAX_SLOTS = 10_000;

export interface SlotGenerationResult {
  role: string;
  schedules: string[];
  created: number;
  removed: number;
  unchanged: number;
}

const iso = (t: number) => new Date(t).toISOString().replace('.000Z', 'Z');
const idOf = (ref: string, type: string) => {
  const [t, id] = ref.split('/');
  if (t !== type || !id) throw errors.badRequest(`'${ref}' is not a ${type} reference`);
  return id;
};

/**
 * Brings the free Slots of a role in [from, to) in line with its availability: creates the missing ones (in
 * the Schedule of the role and each of its locations, created if missing) and deletes free future slots that
 * no longer fit. Slots that are not free (busy, held) are never touched, and no new slot overlaps one.
 * Idempotent: slot identifiers are deterministic and created with conditional create, so concurrent runs
 * agree. A role that is not active and verified gets no slots (its free future ones are removed).
 */
export async function generateSlots(repo: FhirRepository, roleRef: string, from: Date, to: Date, now = new Date()): Promise<SlotGenerationResult> {
  const roleId = idOf(roleRef, 'PractitionerRole');
  const role = parseResource(await repo.read('PractitionerRole', roleId)) as PractitionerRole;
  const bookable = isBookable(role);
  const result: SlotGenerationResult = { role: `PractitionerRole/${roleId}`, schedules: [], created: 0, removed: 0, unchanged: 0 };
  const start = Math.max(from.getTime(), now.getTime()); // the past is history: never rewritten
  if (!(to.getTime() > start)) return result;
  const locations = role.location?.map((l) => l.reference).filter((r): r is string => !!r?.startsWith('Location/')) ?? [];
  for (const location of locations.length ? locations : [undefined]) {
    const key = `${roleId}/${location ? idOf(location, 'Location') : '-'}`;
    const schedule = await ensureSchedule(repo, role, location, key, bookable);
    if (!schedule) continue;
    result.schedules.push(`Schedule/${schedule}`);
    const wanted = bookable ? availableSlots(role, await zoneOf(repo, role, location), start, to.getTime(), slotMinutes(role)) : [];
    await reconcile(repo, role, schedule, key, wanted, start, to.getTime(), result);
  }
  return result;
}

async function reconcile(repo: FhirRepository, role: PractitionerRole, schedule: string, key: string, wanted: Interval[], from: number, to: number, result: SlotGenerationResult): Promise<void> {
  const existing = await repo.findByCriteria('Slot', `schedule=Schedule/${schedule}&start=ge${encodeURIComponent(iso(from))}&start=lt${encodeURIComponent(iso(to))}`, MAX_SLOTS);
  const slots = existing.map((v) => ({ version: v, slot: parseResource(v) as Slot }));
  const taken: Interval[] = slots.filter((s) => s.slot.status.startsWith('busy')).map((s) => ({ start: Date.parse(s.slot.start), end: Date.parse(s.slot.end) }));
  const overlapsTaken = (i: Interval) => taken.some((t) => t.start < i.end && i.start < t.end);
  const wantedByKey = new Map(wanted.filter((w) => !overlapsTaken(w)).map((w) => [`${key}/${iso(w.start)}`, w]));
  const stale = [];
  for (const { version, slot } of slots) {
    if (slot.status !== 'free') continue;
    const k = slot.identifier?.find((i) => i.system === SLOT_KEY)?.value;
    const w = k ? wantedByKey.get(k) : undefined;
    if (w && Date.parse(slot.end) === w.end) {
      wantedByKey.delete(k!);
      result.unchanged++;
    } else stale.push(version);
  }
  await pool(stale, async (v) => {
    try {
      // Pinned to the free version read above: a slot booked meanwhile is no longer ours to remove.
      if (await repo.delete('Slot', v.id, { ifMatch: v.versionId })) result.removed++;
    } catch (err) {
      if (!(isOperationOutcomeError(err) && (err.status === 412 || err.status === 409))) throw err;
    }
  });
  await pool([...wantedByKey], async ([k, w]) => {
    const slot: Slot = {
      resourceType: 'Slot',
      identifier: [{ system: SLOT_KEY, value: k }],
      schedule: { reference: `Schedule/${schedule}` },
      status: 'free',
      start: iso(w.start),
      end: iso(w.end),
      ...(role.specialty?.length ? { specialty: role.specialty } : {}),
    };
    const r = await repo.create(slot, { ifNoneExist: `identifier=${encodeURIComponent(`${SLOT_KEY}|${k}`)}` });
    if (r.matched) result.unchanged++;
    else result.created++;
  });
}

/** The Schedule id of a role at a location: created (or kept in line with the role) when bookable; looked up otherwise. */
async function ensureSchedule(repo: FhirRepository, role: PractitionerRole, location: string | undefined, key: string, bookable: boolean): Promise<string | undefined> {
  const criteria = `identifier=${encodeURIComponent(`${SCHEDULE_KEY}|${key}`)}`;
  const schedule: Schedule = {
    resourceType: 'Schedule',
    identifier: [{ system: SCHEDULE_KEY, value: key }],
    active: bookable,
    actor: [{ reference: `PractitionerRole/${role.id}` }, ...(location ? [{ reference: location }] : []), ...(role.practitioner?.reference ? [{ reference: role.practitioner.reference }] : [])],
    ...(role.specialty?.length ? { specialty: role.specialty } : {}),
  };
  if (!bookable) {
    const [found] = await repo.findByCriteria('Schedule', criteria, 1);
    if (found) await repo.update({ ...schedule, id: found.id });
    return found?.id;
  }
  const r = await repo.create(schedule, { ifNoneExist: criteria });
  // An unchanged update writes no new version, so keeping an existing Schedule in line is cheap.
  if (r.matched) await repo.update({ ...schedule, id: r.version.id });
  return r.version.id;
}

/** The time zone of a role at a location: the Location's, else its managing Organization's, else the role's Organization's. */
async function zoneOf(repo: FhirRepository, role: PractitionerRole, location: string | undefined): Promise<string> {
  const read = async <T>(ref: string | undefined, type: string): Promise<T | undefined> => (ref ? (parseResource(await repo.read(type, idOf(ref, type))) as T) : undefined);
  const loc = await read<Location>(location, 'Location');
  const zone =
    timezoneOf(loc) ??
    timezoneOf(await read<Organization>(loc?.managingOrganization?.reference, 'Organization')) ??
    timezoneOf(await read<Organization>(role.organization?.reference, 'Organization'));
  if (!zone) throw errors.businessRule(`No time zone for PractitionerRole/${role.id}: give its Location or Organization the extension http://hl7.org/fhir/StructureDefinition/timezone`);
  if (!isTimeZone(zone)) throw errors.businessRule(`'${zone}' is not an IANA time zone`);
  return zone;
}

async function pool<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
}
