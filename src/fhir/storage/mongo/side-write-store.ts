import type { ClientSession, Db } from 'mongodb';
import type { SideWrite } from '../side-writes.js';

/** Inserts side writes, one bulk insert per collection (in the session's transaction when there is one). */
export async function insertSideWrites(db: Db, sides: SideWrite[], session?: ClientSession): Promise<void> {
  for (const [collection, docs] of byCollection(sides)) await db.collection<SideWrite['doc']>(collection).insertMany(docs, { session, ordered: true });
}

/** Removes side writes whose version was not written (engines without transactions). */
export async function removeSideWrites(db: Db, sides: SideWrite[]): Promise<void> {
  for (const [collection, docs] of byCollection(sides)) await db.collection<SideWrite['doc']>(collection).deleteMany({ _id: { $in: docs.map((d) => d._id) } });
}

function byCollection(sides: SideWrite[]): Map<string, SideWrite['doc'][]> {
  const out = new Map<string, SideWrite['doc'][]>();
  for (const s of sides) out.set(s.collection, [...(out.get(s.collection) ?? []), s.doc]);
  return out;
}
