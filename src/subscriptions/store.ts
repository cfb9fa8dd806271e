import type { Collection, Db } from 'mongodb';
import type { SideWriteHook } from '../fhir/storage/side-writes.js';

/** One committed (or about to be committed) resource version, written with it in the same unit of work. */
export interface OutboxEntry {
  /** `Type/id/versionId`: one entry per version. */
  _id: string;
  type: string;
  id: string;
  versionId: string;
  previousVersionId?: string;
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  at: Date;
}

/** One notification event of one subscription; `n` counts from 1 per subscription without gaps. */
export interface EventDoc {
  /** `subscriptionId#0000000042` */
  _id: string;
  sub: string;
  n: number;
  /** The outbox entry it came from (dedupes a fan-out that is repeated after a crash). */
  source: string;
  type: string;
  id: string;
  versionId: string;
  /** The version the subscription was matched on (the previous one for a delete). */
  matchedVersionId: string;
  method: OutboxEntry['method'];
  at: Date;
}

/** Fan-out's numbering per subscription (written by the fan-out leader only). */
export interface CounterDoc {
  _id: string;
  count: number;
}

/** Delivery progress per subscription (written by the holder of its delivery lease only). */
export interface StateDoc {
  _id: string;
  delivered: number;
  lastSentAt?: Date;
  attempts?: number;
  firstFailureAt?: Date | null;
  nextAttemptAt?: Date | null;
  lastError?: string | null;
  /** The activation (owner `since`) the handshake was last sent for. */
  handshakeFor?: string;
}

export interface LeaseDoc {
  _id: string;
  owner: string;
  exp: Date;
}

export const eventKey = (sub: string, n: number) => `${sub}#${String(n).padStart(10, '0')}`;

export class SubscriptionStore {
  readonly outbox: Collection<OutboxEntry>;
  readonly events: Collection<EventDoc>;
  readonly counters: Collection<CounterDoc>;
  readonly states: Collection<StateDoc>;
  readonly leases: Collection<LeaseDoc>;

  constructor(db: Db) {
    this.outbox = db.collection('subscription_outbox');
    this.events = db.collection('subscription_events');
    this.counters = db.collection('subscription_counters');
    this.states = db.collection('subscription_states');
    this.leases = db.collection('subscription_leases');
  }

  async init(): Promise<void> {
    await this.outbox.createIndex({ at: 1 }, { name: 'at' });
    await this.events.createIndex({ source: 1 }, { name: 'source' });
    await this.events.createIndex({ sub: 1, n: 1 }, { name: 'sub_n' });
    await this.leases.createIndex({ exp: 1 }, { name: 'exp' });
  }

  /**
   * The outbox side write: every resource version of a type some subscription watches (see watched-types.ts)
   * gets an entry in the same unit of
   * work (fhir/storage/side-writes.ts), so a committed change always has one and a failed one none; on
   * FerretDB an entry whose version never appeared is recognised and dropped by the fan-out.
   */
  hook(needed: (type: string) => boolean): SideWriteHook {
    return ({ version, previous }) => {
      if (version.resourceType === 'Subscription' || !needed(version.resourceType)) return [];
      const doc: OutboxEntry = {
        _id: `${version.resourceType}/${version.id}/${version.versionId}`,
        type: version.resourceType, id: version.id, versionId: version.versionId, method: version.method, at: new Date(),
        ...(previous ? { previousVersionId: previous.versionId } : {}),
      };
      return [{ collection: this.outbox.collectionName, doc: doc as unknown as { _id: string } & Record<string, unknown> }];
    };
  }
}

const isDuplicateKey = (err: unknown) => (err as { code?: number }).code === 11000;

/**
 * Leases by time slot: `key@slot` (slot = ⌊now / leaseMs⌋) is claimed by a unique insert, the one operation
 * FerretDB settles atomically between processes (see jobs/job-runner.ts), so each slot has one holder. The
 * holder extends by claiming the next slot before its own ends; a process that died simply does not, and the
 * next slot goes to whoever claims it first.
 */
export class SlotLeases {
  constructor(private readonly col: Collection<LeaseDoc>, private readonly owner: string, readonly leaseMs: number) {}

  /** Until when this process holds `key` (claiming the current slot, and the next when the current is ending), or undefined. */
  async hold(key: string, needMs: number): Promise<number | undefined> {
    const slot = Math.floor(Date.now() / this.leaseMs);
    if (!(await this.claim(key, slot))) return undefined;
    let until = (slot + 1) * this.leaseMs;
    if (until - Date.now() < needMs) {
      if (!(await this.claim(key, slot + 1))) return undefined;
      until += this.leaseMs;
    }
    return until;
  }

  private async claim(key: string, slot: number): Promise<boolean> {
    const _id = `${key}@${slot}`;
    try {
      await this.col.insertOne({ _id, owner: this.owner, exp: new Date((slot + 1) * this.leaseMs) });
      return true;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    return (await this.col.findOne({ _id }))?.owner === this.owner;
  }

  /** On shutdown: gives up every lease of this process, so another takes over without waiting for the slot to end. */
  async releaseAll(): Promise<void> {
    await this.col.deleteMany({ owner: this.owner });
  }

  async sweep(): Promise<void> {
    await this.col.deleteMany({ exp: { $lt: new Date(Date.now() - 10 * this.leaseMs) } });
  }
}
