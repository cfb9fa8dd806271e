import type { Logger } from '../infra/logger.js';
import { AccessPolicy } from '../auth/access-policy.js';
import type { LinkCache } from '../auth/link-cache.js';
import type { Indexer } from '../fhir/search/index-entry.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { ResourceVersion } from '../fhir/storage/types.js';
import { indexed } from './criteria.js';
import type { SubscriptionDirectory } from './directory.js';
import type { SubscriptionSpec } from './subscription-spec.js';
import { eventKey, type OutboxEntry, type SlotLeases, type SubscriptionStore } from './store.js';

export interface FanoutOptions {
  store: SubscriptionStore;
  repo: FhirRepository;
  indexer: Indexer;
  directory: SubscriptionDirectory;
  leases: SlotLeases;
  logger: Logger;
  links?: LinkCache;
  /** An outbox entry whose version is still missing after this long was never committed (FerretDB, a crash between the writes). */
  orphanAfterMs: number;
  batch: number;
}

/**
 * Turns outbox entries into numbered events, one process at a time (the holder of the `fanout` lease): each
 * committed version is matched in memory against every active subscription of its type (criteria or topic
 * filters), then checked with the owner's AccessPolicy as the REST layer would for a read; a match gets the
 * subscription's next event number. An entry is removed once fanned out; a repeat after a crash is recognised
 * by the event's `source`.
 */
export class Fanout {
  private readonly counts = new Map<string, number>();

  constructor(private readonly o: FanoutOptions) {}

  /** One pass; resolves to how many entries were handled (0 when another process holds the lease). */
  async runOnce(): Promise<number> {
    const until = await this.o.leases.hold('fanout', 5_000);
    if (!until) {
      this.counts.clear(); // another process numbers events meanwhile
      return 0;
    }
    const entries = await this.o.store.outbox.find({}).sort({ at: 1, _id: 1 }).limit(this.o.batch).toArray();
    if (!entries.length) return 0;
    const subs = await this.o.directory.active();
    const policies = new Map<string, AccessPolicy>();
    const touched = new Set<string>();
    let handled = 0;
    try {
      handled = await this.pass(entries, subs, policies, touched, until);
    } finally {
      // The counters follow the events once per pass (a lagging counter is corrected from the events, see append).
      for (const sub of touched) await this.o.store.counters.updateOne({ _id: sub }, { $set: { count: this.counts.get(sub)! } }, { upsert: true });
    }
    return handled;
  }

  private async pass(entries: OutboxEntry[], subs: SubscriptionSpec[], policies: Map<string, AccessPolicy>, touched: Set<string>, until: number): Promise<number> {
    let handled = 0;
    for (const entry of entries) {
      if (Date.now() > until - 2_000) break; // the lease is ending: the next holder continues
      let current: ResourceVersion;
      try {
        current = await this.o.repo.vread(entry.type, entry.id, entry.versionId);
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status === 410 && entry.method === 'DELETE') {
          // A committed deletion (vread answers 410 for a tombstone).
          current = { resourceType: entry.type, id: entry.id, versionId: entry.versionId, lastUpdated: entry.at.toISOString(), deleted: true, json: null, method: 'DELETE' };
        } else {
          if (status !== 404) throw err;
          if (Date.now() - entry.at.getTime() > this.o.orphanAfterMs) await this.o.store.outbox.deleteOne({ _id: entry._id });
          continue; // not committed (yet)
        }
      }
      const matching = subs.filter((s) => s.resourceType === entry.type && s.owner && entry.at.getTime() >= Date.parse(s.owner.since) && !(s.end && entry.at.getTime() > Date.parse(s.end)));
      if (matching.length) {
        let matched = current;
        if (current.deleted || current.json === null) {
          if (!entry.previousVersionId) matching.length = 0;
          else matched = await this.o.repo.vread(entry.type, entry.id, entry.previousVersionId).catch(() => current);
        }
        if (matched.json) {
          const resource = JSON.parse(matched.json) as Record<string, unknown>;
          const doc = indexed(this.o.indexer, entry.id, resource);
          // A repeat after a crash: the subscriptions this entry already made events for.
          const done = new Set((await this.o.store.events.find({ source: entry._id }, { projection: { sub: 1 } }).toArray()).map((e) => e.sub));
          for (const sub of matching) {
            if (done.has(sub.id)) continue;
            if (!sub.filters.every((f) => f.matches(doc))) continue;
            let policy = policies.get(sub.id);
            if (!policy) policies.set(sub.id, (policy = new AccessPolicy(sub.owner!.access, this.o.repo, this.o.indexer, this.o.links)));
            const allowed = await policy.permits(entry.type, entry.id, resource, 'r').catch(() => false);
            if (!allowed) continue;
            await this.append(sub, entry, matched.versionId);
            touched.add(sub.id);
          }
        }
      }
      await this.o.store.outbox.deleteOne({ _id: entry._id });
      handled++;
    }
    return handled;
  }

  private async append(sub: SubscriptionSpec, entry: OutboxEntry, matchedVersionId: string): Promise<void> {
    for (let tries = 0; ; tries++) {
      let n = this.counts.get(sub.id);
      if (n === undefined) n = (await this.o.store.counters.findOne({ _id: sub.id }))?.count ?? 0;
      const next = n + 1;
      try {
        await this.o.store.events.insertOne({
          _id: eventKey(sub.id, next), sub: sub.id, n: next, source: entry._id, type: entry.type, id: entry.id,
          versionId: entry.versionId, matchedVersionId, method: entry.method, at: new Date(),
        });
      } catch (err) {
        if ((err as { code?: number }).code !== 11000 || tries > 3) throw err;
        // The counter lags behind an event written before a crash: recount from the events themselves.
        const last = await this.o.store.events.find({ sub: sub.id }).sort({ n: -1 }).limit(1).next();
        this.counts.set(sub.id, last?.n ?? 0);
        continue;
      }
      this.counts.set(sub.id, next);
      return;
    }
  }
}
