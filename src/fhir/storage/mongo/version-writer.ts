import { MongoServerError, type ClientSession } from 'mongodb';
import type { Collections, CurrentDoc, HistoryDoc } from './documents.js';
import { errors } from '../../outcomes.js';
import type { SearchIndex } from '../../search/index-entry.js';

const DUPLICATE_KEY = 11000;

export function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

/** Raised when another writer took the version this writer expected to create. */
export class VersionConflict extends Error {
  constructor(
    readonly key: string,
    readonly version: number,
    /** The version is held by side writes of an attempt still settling (side-write-store.ts): retry after a pause. */
    readonly settling = false,
  ) {
    super(`version ${version} of ${key} was written concurrently`);
  }
}

/**
 * Writes version `doc.v` of a resource: first the history document, whose unique `_id` (`Type/id/v`)
 * admits exactly one writer per version on any engine, then the current document.
 * Without transactions a crash between the two leaves history one version ahead; `rollForward`
 * repairs that from the history document, which is complete, the next time anyone writes the resource.
 */
export async function writeVersion(c: Collections, doc: CurrentDoc, session?: ClientSession): Promise<void> {
  const hist: HistoryDoc = { _id: `${doc._id}/${doc.v}`, t: doc.t, id: doc.id, v: doc.v, lu: doc.lu, del: doc.del, json: doc.json, m: doc.m };
  try {
    if (session) await c.history(doc.t).insertOne(hist, { session });
    else await c.inserts.insert(c.history(doc.t), [hist]);
  } catch (err) {
    if (isDuplicateKey(err)) throw new VersionConflict(doc._id, doc.v);
    throw err;
  }
  await replaceIfNewer(c, doc, session);
}

/**
 * Writes many first versions (new resources) with two bulk inserts per type instead of two round trips
 * per resource; a duplicate key (an id taken meanwhile, e.g. by a concurrent update-as-create) is a 409.
 */
export async function writeNewVersions(c: Collections, docs: CurrentDoc[], session?: ClientSession): Promise<void> {
  const byType = new Map<string, CurrentDoc[]>();
  for (const d of docs) byType.set(d.t, [...(byType.get(d.t) ?? []), d]);
  for (const [type, group] of byType) {
    try {
      await c.history(type).insertMany(group.map((d) => ({ _id: `${d._id}/${d.v}`, t: d.t, id: d.id, v: d.v, lu: d.lu, del: d.del, json: d.json, m: d.m })), { session });
      await c.current(type).insertMany(group, { session });
    } catch (err) {
      if (isDuplicateKey(err)) throw errors.conflict(`A ${type} with one of the new ids was created concurrently; nothing was stored`);
      throw err;
    }
  }
}

async function replaceIfNewer(c: Collections, doc: CurrentDoc, session?: ClientSession): Promise<void> {
  try {
    // A first version is a plain insert: no filter to evaluate (FerretDB would scan the table for one).
    if (doc.v === 1 && session) await c.current(doc.t).insertOne(doc, { session });
    else if (doc.v === 1) await c.inserts.insert(c.current(doc.t), [doc]);
    else await c.current(doc.t).replaceOne({ _id: doc._id, v: { $lt: doc.v } }, doc, { upsert: true, session });
  } catch (err) {
    // The upsert collides only when the current document is already at this version or later
    // (another writer rolled it forward): nothing left to do.
    if (!isDuplicateKey(err)) throw err;
  }
}

/**
 * Brings the current document up to the newest history version, when an interrupted writer left it behind.
 * `reindex` recomputes the search entries of the history version's JSON.
 */
export async function rollForward(
  c: Collections,
  key: string,
  currentVersion: number,
  reindex: (json: string) => SearchIndex,
  session?: ClientSession,
): Promise<boolean> {
  const [t, id] = key.split('/') as [string, string];
  const newest = await c.history(t).find({ id }, { session }).sort({ v: -1 }).limit(1).next();
  if (!newest || newest.v <= currentVersion) return false;
  await replaceIfNewer(
    c,
    { _id: key, t, id, v: newest.v, lu: newest.lu, del: newest.del, json: newest.json, m: newest.m, ...(newest.json ? reindex(newest.json) : {}) },
    session,
  );
  return true;
}

/** Undoes a version this process wrote (used to roll back a failed multi-write on engines without transactions). */
export async function undoVersion(c: Collections, doc: CurrentDoc, previous: CurrentDoc | null): Promise<void> {
  await c.history(doc.t).deleteOne({ _id: `${doc._id}/${doc.v}` });
  if (previous) await c.current(doc.t).replaceOne({ _id: doc._id, v: doc.v }, previous);
  else await c.current(doc.t).deleteOne({ _id: doc._id, v: doc.v });
}
