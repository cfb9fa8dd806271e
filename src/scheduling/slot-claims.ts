import type { Collection, Db } from 'mongodb';
import { isDuplicateKey } from '../fhir/storage/mongo/version-writer.js';

/** Who holds a slot: one document per Slot, so the unique `_id` admits exactly one active appointment. */
export interface SlotClaim {
  _id: string; // Slot/<id>
  appointment: string; // Appointment/<id>
  state: 'hold' | 'booked';
  /** Holds lapse; a lapsed hold can be taken over by the next booking. */
  expiresAt?: Date;
  at: Date;
}

/**
 * Atomic slot ownership on any engine (FerretDB has no transactions): inserting the claim is the booking
 * decision. Two concurrent bookings of one slot race on the same `_id` and exactly one insert succeeds; the
 * Slot's FHIR status is then updated to match, and a crash in between is repaired from the claims.
 */
/**
 * Whether a booked claim older than the orphan age has lost its appointment (a process died between claiming
 * the slot and writing the appointment, or between cancelling and releasing): then nobody holds the slot.
 */
export type StaleClaimCheck = (claim: SlotClaim) => Promise<boolean>;

export class SlotClaims {
  readonly col: Collection<SlotClaim>;

  constructor(
    db: Db,
    private readonly stale?: { check: StaleClaimCheck; afterMs: number },
  ) {
    this.col = db.collection<SlotClaim>('slot_claims');
  }

  /** Claims a free slot (or one whose hold lapsed, or whose booked claim was orphaned); false when someone else holds it. */
  async claim(slot: string, appointment: string, state: SlotClaim['state'], holdMs?: number): Promise<boolean> {
    const now = new Date();
    await this.col.deleteOne({ _id: slot, state: 'hold', expiresAt: { $lt: now } }); // a lapsed hold frees the slot
    const doc = { _id: slot, appointment, state, at: now, ...(state === 'hold' ? { expiresAt: new Date(now.getTime() + holdMs!) } : {}) };
    if (await this.insert(doc)) return true;
    // Taken: by a live booking, or by the leftover of a process that died half-way through one.
    const held = await this.col.findOne({ _id: slot });
    if (!held || !this.stale || held.state !== 'booked' || now.getTime() - held.at.getTime() < this.stale.afterMs) return !held && this.insert(doc);
    if (!(await this.stale.check(held))) return false;
    // Removed only as it was read (same appointment and time), so two processes cannot both take it over.
    if ((await this.col.deleteOne({ _id: slot, appointment: held.appointment, at: held.at })).deletedCount !== 1) return false;
    return this.insert(doc);
  }

  /** Whether this appointment still holds the slot (a booking checks it once its appointment is written). */
  async holds(slot: string, appointment: string): Promise<boolean> {
    return !!(await this.col.findOne({ _id: slot, appointment }));
  }

  private async insert(doc: SlotClaim): Promise<boolean> {
    try {
      await this.col.insertOne(doc);
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  /** Turns this appointment's hold into a booking; false if the hold lapsed and the slot was taken. */
  async confirmHold(slot: string, appointment: string): Promise<boolean> {
    const res = await this.col.updateOne({ _id: slot, appointment }, { $set: { state: 'booked', at: new Date() }, $unset: { expiresAt: '' } });
    if (res.matchedCount === 1) return true;
    return this.claim(slot, appointment, 'booked');
  }

  /** Gives up this appointment's claim; false when it held none (e.g. its lapsed hold was taken over). */
  async release(slot: string, appointment: string): Promise<boolean> {
    return (await this.col.deleteOne({ _id: slot, appointment })).deletedCount === 1;
  }

  async holder(slot: string): Promise<SlotClaim | null> {
    const c = await this.col.findOne({ _id: slot });
    return c && (c.state === 'booked' || (c.expiresAt && c.expiresAt > new Date())) ? c : null;
  }

  async lapsedHolds(now = new Date()): Promise<SlotClaim[]> {
    return this.col.find({ state: 'hold', expiresAt: { $lt: now } }).limit(500).toArray();
  }
}
