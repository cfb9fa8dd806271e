import { randomUUID } from 'node:crypto';
import type { ClientSession, Db } from 'mongodb';
import type { Collections } from './documents.js';
import type { SideWrite } from '../side-writes.js';
import { VersionConflict, isDuplicateKey } from './version-writer.js';

/** A side write of another attempt this old, whose version was never written, is a leftover (see below). */
const LEFTOVER_MS = 30_000;

/** The version a set of side writes belongs to, and whether it has been written meanwhile. */
export interface SideWriteVersion {
  key: string;
  v: number;
  written: () => Promise<boolean>;
}

/**
 * Inserts side writes, one bulk insert per collection (in the session's transaction when there is one; without,
 * grouped with other requests' inserts: insert-batcher.ts).
 * Each document is stamped with this attempt's token (`_w`) and time (`_wt`), so that undoing an attempt removes
 * only its own documents, never those of a concurrent writer that used the same `_id` (side writes are often
 * keyed by version, `Type/id/v`, and two writers racing for one version compute the same keys).
 *
 * A duplicate key means another attempt holds those keys: a writer of the same version (then a VersionConflict,
 * which the caller's retry loop handles like a lost race for the history document), or the leftover of an
 * attempt whose version was never written and whose removal failed (the database went away, the process died).
 * A leftover older than LEFTOVER_MS is removed here; a younger one makes the conflict `settling`, and the
 * retry loop waits a little (this process retries a removal that failed in the background: PendingRollbacks).
 */
export async function insertSideWrites(c: Collections, sides: SideWrite[], session?: ClientSession, version?: SideWriteVersion): Promise<void> {
  const db = c.database;
  const token = randomUUID();
  const at = new Date();
  for (const s of sides) {
    s.doc._w ??= token;
    s.doc._wt ??= at;
  }
  try {
    if (session) {
      // One operation at a time in a transaction.
      for (const [collection, docs] of byCollection(sides)) await db.collection<SideWrite['doc']>(collection).insertMany(docs, { session, ordered: true });
    } else {
      // The collections at once; every insert settles before a failure is handled, so that the removal below
      // cannot run ahead of an insert still on its way.
      const settled = await Promise.allSettled([...byCollection(sides)].map(([collection, docs]) => c.inserts.insert(db.collection<SideWrite['doc']>(collection), docs)));
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
  } catch (err) {
    if (!version || !isDuplicateKey(err)) throw err;
    if (session) throw new VersionConflict(version.key, version.v);
    await removeSideWrites(db, sides);
    if (await version.written()) throw new VersionConflict(version.key, version.v);
    let young = false;
    for (const [collection, docs] of byCollection(sides)) {
      const col = db.collection<SideWrite['doc']>(collection);
      const others = await col.find({ _id: { $in: docs.map((d) => d._id) }, _w: { $ne: docs[0]!._w } } as never, { projection: { _w: 1, _wt: 1 } }).toArray();
      for (const o of others) {
        const t = o._wt instanceof Date ? o._wt.getTime() : 0;
        if (Date.now() - t < LEFTOVER_MS) young = true;
        else await col.deleteOne({ _id: o._id, _w: o._w } as never);
      }
    }
    throw new VersionConflict(version.key, version.v, young);
  }
}

/** Removes side writes whose version was not written (engines without transactions): this attempt's own only. */
export async function removeSideWrites(db: Db, sides: SideWrite[]): Promise<void> {
  for (const [collection, docs] of byCollection(sides)) {
    const tokens = [...new Set(docs.map((d) => d._w).filter((t): t is string => typeof t === 'string'))];
    await db.collection<SideWrite['doc']>(collection).deleteMany({ _id: { $in: docs.map((d) => d._id) }, ...(tokens.length ? { _w: { $in: tokens } } : {}) });
  }
}

function byCollection(sides: SideWrite[]): Map<string, SideWrite['doc'][]> {
  const out = new Map<string, SideWrite['doc'][]>();
  for (const s of sides) out.set(s.collection, [...(out.get(s.collection) ?? []), s.doc]);
  return out;
}
