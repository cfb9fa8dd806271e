import type { Db, Collection } from 'mongodb';
import type { SearchIndex } from '../../search/index-entry.js';
import type { ResourceVersion } from '../types.js';

/** Current version of every resource, one document per `Type/id` (tombstones included). */
export interface CurrentDoc {
  _id: string;
  t: string;
  id: string;
  v: number;
  lu: Date;
  del: boolean;
  json: string | null;
  m: ResourceVersion['method'];
  /** Normalized search index (see search/index-entry.ts): multikey arrays of prefixed scalar keys. */
  ix: SearchIndex;
}

/** Every version ever written, keyed `Type/id/version`: the unique key is what serializes concurrent writers. */
export interface HistoryDoc {
  _id: string;
  t: string;
  id: string;
  v: number;
  lu: Date;
  del: boolean;
  json: string | null;
  m: ResourceVersion['method'];
}

/** Short-lived locks that serialize conditional creates on the same criteria. */
export interface LockDoc {
  _id: string;
  owner: string;
  exp: Date;
}

export interface Collections {
  current: Collection<CurrentDoc>;
  history: Collection<HistoryDoc>;
  locks: Collection<LockDoc>;
}

export function collections(db: Db): Collections {
  return {
    current: db.collection<CurrentDoc>('resources'),
    history: db.collection<HistoryDoc>('resource_history'),
    locks: db.collection<LockDoc>('resource_locks'),
  };
}

/** Creates the indexes the repository and search rely on; safe to run on every start (createIndex is idempotent). */
export async function ensureIndexes(c: Collections): Promise<void> {
  await Promise.all([
    c.current.createIndex({ t: 1, lu: -1, _id: -1 }, { name: 'type_lastUpdated' }),
    c.current.createIndex({ t: 1, 'ix.tk': 1 }, { name: 'search_tokens' }),
    c.history.createIndex({ t: 1, id: 1, v: -1 }, { name: 'instance_versions' }),
    c.history.createIndex({ t: 1, lu: -1, _id: -1 }, { name: 'type_history' }),
    c.history.createIndex({ lu: -1, _id: -1 }, { name: 'system_history' }),
  ]);
}

export function toVersion(d: CurrentDoc | HistoryDoc): ResourceVersion {
  return {
    resourceType: d.t,
    id: d.id,
    versionId: String(d.v),
    lastUpdated: d.lu.toISOString(),
    deleted: d.del,
    json: d.json,
    method: d.m,
  };
}
