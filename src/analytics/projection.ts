import type { Collection, Db } from 'mongodb';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { SideWriteHook } from '../fhir/storage/side-writes.js';
import { FACTS, factsOf, PROJECTED_TYPES, readerFor, withKeys, type Fact } from './facts.js';

export const CHANGES = 'analytics_changes';
/** A change whose version has not appeared after this long was never written (its writer failed or died). */
const ABANDON_MS = 60_000;
const BATCH = 500;

interface Change {
  _id: string; // Type/id/version
  ref: string;
  v: number;
  at: Date;
}

/**
 * Keeps `analytics_facts` up to date. Every write of a projected type leaves a change entry in the same
 * unit of work as its version (a side write, src/fhir/storage/side-writes.ts); before any figure is
 * computed, `catchUp` derives the facts of the changed resources again from their current versions and
 * removes the entries it has applied. Any number of processes may catch up at once: facts are replaced only
 * by later versions, and an entry is removed only once the fact reflects its version (without transactions
 * the entry is written before its version, so a catch-up in between keeps it for the next one).
 */
export class AnalyticsProjection {
  readonly facts: Collection<Fact>;
  private readonly changes: Collection<Change>;
  private running?: Promise<Set<string>>;

  constructor(db: Db, private readonly repo: FhirRepository, private readonly onScopesChanged: (orgs: Set<string>) => Promise<void>) {
    this.facts = db.collection<Fact>(FACTS);
    this.changes = db.collection<Change>(CHANGES);
  }

  async init(): Promise<void> {
    await this.facts.createIndex({ km: 1 });
    await this.facts.createIndex({ kom: 1 });
    await this.facts.createIndex({ kind: 1, org: 1 });
    await this.changes.createIndex({ at: 1 });
  }

  /** The side-write hook the repository calls for every version. */
  readonly hook: SideWriteHook = ({ version }) => {
    if (!(PROJECTED_TYPES as readonly string[]).includes(version.resourceType)) return [];
    const ref = `${version.resourceType}/${version.id}`;
    return [{ collection: CHANGES, doc: { _id: `${ref}/${version.versionId}`, ref, v: Number(version.versionId) || 0, at: new Date() } }];
  };

  /** Applies pending changes; one run at a time per process (concurrent callers share it). */
  catchUp(): Promise<Set<string>> {
    if (!this.running) {
      this.running = this.apply().finally(() => (this.running = undefined));
    }
    return this.running;
  }

  private async apply(): Promise<Set<string>> {
    const touched = new Set<string>();
    for (;;) {
      const batch = await this.changes.find({}).sort({ at: 1 }).limit(BATCH).toArray();
      if (!batch.length) break;
      const read = readerFor(this.repo);
      const done: string[] = [];
      const refs = [...new Set(batch.map((c) => c.ref))];
      const applied = new Map<string, number>();
      const queue = [...refs];
      const seen = new Set<string>();
      while (queue.length) {
        const ref = queue.shift()!;
        if (seen.has(ref)) continue;
        seen.add(ref);
        const { facts, dependents } = await factsOf(ref, this.repo, read);
        queue.push(...dependents);
        const previous = await this.facts.findOne({ _id: ref });
        for (const o of [previous?.org, ...(previous?.orgs ?? [])]) if (o) touched.add(o);
        if (!facts.length) {
          if (previous) await this.facts.deleteOne({ _id: ref });
          applied.set(ref, Number.MAX_SAFE_INTEGER);
          continue;
        }
        for (const f of facts) {
          for (const o of [f.org, ...(f.orgs ?? [])]) if (o) touched.add(o);
          if (!previous || previous.v <= f.v) await this.facts.replaceOne({ _id: f._id }, withKeys(f), { upsert: true }).catch(ignoreDuplicate);
          // The patients an Organization has ever had an appointment for (its overview's patient count).
          if (f.kind === 'appt' && f.org && f.patient) {
            const id = `orgpatient/${f.org}/${f.patient}`;
            await this.facts.updateOne({ _id: id }, { $setOnInsert: { kind: 'orgpatient', org: f.org, patient: f.patient, v: 0 } }, { upsert: true }).catch(ignoreDuplicate);
          }
          applied.set(ref, Math.max(f.v, previous?.v ?? 0));
        }
      }
      const now = Date.now();
      for (const c of batch) {
        if ((applied.get(c.ref) ?? -1) >= c.v || now - c.at.getTime() > ABANDON_MS) done.push(c._id);
      }
      if (touched.size === 0) touched.add('*');
      if (done.length) await this.changes.deleteMany({ _id: { $in: done } });
      await this.onScopesChanged(touched);
      if (done.length < batch.length) break; // the rest wait for their versions
    }
    return touched;
  }

  /**
   * Queues a change for every current resource of the projected types (data stored before this module, or
   * a changed fact definition), page by page through search, then catches up. Resolves to how many.
   */
  async rebuild(): Promise<number> {
    let n = 0;
    const stored = new Set(await this.repo.storedTypes());
    for (const type of PROJECTED_TYPES.filter((t) => stored.has(t))) {
      let cursor: string | undefined;
      do {
        const page = await this.repo.search({ types: [type], params: [['_count', String(BATCH)], ...(cursor ? [['_cursor', cursor] as [string, string]] : [])] });
        const docs = page.matches.map((m) => ({ _id: `${type}/${m.id}/${m.v}`, ref: `${type}/${m.id}`, v: m.v, at: new Date() }));
        if (docs.length) await this.changes.insertMany(docs, { ordered: false }).catch(ignoreDuplicate);
        n += docs.length;
        cursor = page.next;
      } while (cursor);
    }
    await this.catchUp();
    return n;
  }

  /**
   * The first start on a database (no `analytics_state` marker): one process, the one that inserts the
   * marker, rebuilds the projection from what is already stored.
   */
  async rebuildOnce(log: (n: number) => void): Promise<void> {
    const state = this.facts.db.collection<{ _id: string; at: Date; done?: boolean }>('analytics_state');
    try {
      await state.insertOne({ _id: 'projection', at: new Date() });
    } catch (err) {
      ignoreDuplicate(err);
      return;
    }
    const n = await this.rebuild();
    await state.updateOne({ _id: 'projection' }, { $set: { done: true, at: new Date() } });
    log(n);
  }
}

function ignoreDuplicate(err: unknown): void {
  const e = err as { code?: number; writeErrors?: { code?: number }[] };
  if (e.code === 11000 || (e.writeErrors?.length && e.writeErrors.every((w) => w.code === 11000))) return;
  throw err;
}
