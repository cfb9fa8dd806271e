import { randomUUID } from 'node:crypto';
import type { ClientSession, Db } from 'mongodb';
import type { SideWrite } from '../side-writes.js';
import { VersionConflict, isDuplicateKey } from './version-writer.js';

/**
 * Inserts side writes, one bulk insert per collection (in the session's transaction when there is one).
 * Each document is stamped with this attempt's token (`_w`), so that undoing an attempt removes only its own
 * documents, never those of a concurrent writer that used the same `_id` (side writes are often keyed by
 * version, `Type/id/v`, and two writers racing for one version compute the same keys).
 *
 * A duplicate key means another writer is writing the same version: with `version` given, the attempt's own
 * documents are removed again (without a transaction) and a VersionConflict is raised, which the caller's
 * retry loop handles like a lost race for the history document.
 */
export async function insertSideWrites(db: Db, sides: SideWrite[], session?: ClientSession, version?: { key: string; v: number }): Promise<void> {
  const token = randomUUID();
  for (const s of sides) s.doc._w ??= token;
  try {
    for (const [collection, docs] of byCollection(sides)) await db.collection<SideWrite['doc']>(collection).insertMany(docs, { session, ordered: true });
  } catch (err) {
    if (!version || !isDuplicateKey(err)) throw err;
    if (!session) await removeSideWrites(db, sides);
    throw new VersionConflict(version.key, version.v);
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
