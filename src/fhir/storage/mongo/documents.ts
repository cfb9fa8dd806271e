import type { Db, Collection } from 'mongodb';
import type { SearchIndex } from '../../search/index-entry.js';
import type { ResourceVersion } from '../types.js';
import { InsertBatcher } from './insert-batcher.js';

/** Every version ever written, keyed `Type/id/version`: the unique key is what serializes concurrent writers. */
export interface HistoryDoc {
  _id: string;
  /** Resource type, id, version number and lastUpdated. */
  t: string;
  id: string;
  v: number;
  lu: Date;
  /** A deletion (tombstone): `json` is null. */
  del: boolean;
  json: string | null;
  /** The interaction that wrote the version. */
  m: ResourceVersion['method'];
}

/**
 * Current version of every resource, one document per `Type/id` (tombstones included), with its normalized
 * search index as top-level arrays of prefixed scalar keys (see search/index-entry.ts for why top-level).
 */
export interface CurrentDoc extends HistoryDoc, Partial<SearchIndex> {}

/** Short-lived locks that serialize conditional creates on the same criteria. */
export interface LockDoc {
  _id: string;
  owner: string;
  exp: Date;
}

const CURRENT_PREFIX = 'fhir_';
const HISTORY_SUFFIX = '_history';

/**
 * One current and one history collection per resource type. Why per type: FerretDB 1.x answers every
 * query with a scan of the whole backing table (its PostgreSQL pushdown `_jsonb->$1 @> $2` cannot use an
 * index), so a Patient read must not scan the Observations; on MongoDB it keeps each type's indexes small.
 * Collections and their indexes are created on first use of a type, once per process.
 */
export class Collections {
  readonly locks: Collection<LockDoc>;
  /** Inserts outside transactions, grouped across concurrent requests (insert-batcher.ts). */
  readonly inserts = new InsertBatcher();
  private readonly ensured = new Map<string, Promise<void>>();

  constructor(
    private readonly db: Db,
    /**
     * Whether the engine builds multikey indexes (one index entry per array element), as MongoDB does.
     * FerretDB 1.x indexes an array as one PostgreSQL btree value, which fails for rows over 8 kB (a Claim's
     * references) and is never used for array queries anyway, so there the search arrays get no index.
     */
    private readonly multikeyIndexes: boolean,
    /** Engine-specific indexes created after the collections exist (FerretDB: GIN indexes in PostgreSQL). */
    private readonly afterReady?: (c: Collections, type: string) => Promise<void>,
  ) {
    this.locks = db.collection<LockDoc>('resource_locks');
  }

  get database(): Db {
    return this.db;
  }

  currentName(type: string): string {
    return `${CURRENT_PREFIX}${type}`;
  }

  historyName(type: string): string {
    return `${CURRENT_PREFIX}${type}${HISTORY_SUFFIX}`;
  }

  current(type: string): Collection<CurrentDoc> {
    return this.db.collection<CurrentDoc>(`${CURRENT_PREFIX}${type}`);
  }

  history(type: string): Collection<HistoryDoc> {
    return this.db.collection<HistoryDoc>(`${CURRENT_PREFIX}${type}${HISTORY_SUFFIX}`);
  }

  /** Creates the type's collections' indexes (idempotent; memoized per process). */
  ready(type: string): Promise<void> {
    let p = this.ensured.get(type);
    if (!p) {
      p = ensureTypeIndexes(this, type, this.multikeyIndexes).then(() => this.afterReady?.(this, type));
      p.catch(() => this.ensured.delete(type));
      this.ensured.set(type, p);
    }
    return p;
  }

  /**
   * Number of current documents of a type, cheaply: MongoDB reads it from metadata; FerretDB 1.x answers
   * `count`/`estimatedDocumentCount` by decoding every document (minutes at 350k), `collStats` by SQL.
   */
  async approximateCount(type: string): Promise<number> {
    if (this.multikeyIndexes) return this.current(type).estimatedDocumentCount();
    const stats = await this.db.command({ collStats: this.currentName(type) }).catch(() => undefined);
    return typeof stats?.count === 'number' ? stats.count : this.current(type).estimatedDocumentCount();
  }

  /** Resource types that have ever been stored (they have a history collection). */
  async storedTypes(): Promise<string[]> {
    const names = await this.db.listCollections({}, { nameOnly: true }).toArray();
    return names
      .map((c) => c.name)
      .filter((n) => n.startsWith(CURRENT_PREFIX) && n.endsWith(HISTORY_SUFFIX))
      .map((n) => n.slice(CURRENT_PREFIX.length, -HISTORY_SUFFIX.length))
      .sort();
  }

  /** At start-up: make sure every existing type has its indexes (new indexes added by an upgrade included). */
  async ensureExisting(): Promise<void> {
    await this.locks.createIndex({ exp: 1 }, { name: 'expiry' });
    for (const type of await this.storedTypes()) await this.ready(type);
  }
}

async function ensureTypeIndexes(c: Collections, type: string, multikey: boolean): Promise<void> {
  await Promise.all([
    c.current(type).createIndex({ lu: -1, _id: -1 }, { name: 'lastUpdated' }),
    // MongoDB: one multikey index per search array serves every parameter stored in it (see index-entry.ts).
    ...(multikey
      ? [
          c.current(type).createIndex({ tk: 1 }, { name: 'search_tokens' }),
          c.current(type).createIndex({ st: 1 }, { name: 'search_strings' }),
          c.current(type).createIndex({ dt: 1 }, { name: 'search_date_starts' }),
          c.current(type).createIndex({ dh: 1 }, { name: 'search_date_ends' }),
          c.current(type).createIndex({ nm: 1 }, { name: 'search_numbers' }),
        ]
      : []),
    c.history(type).createIndex({ id: 1, v: -1 }, { name: 'instance_versions' }),
    c.history(type).createIndex({ lu: -1, _id: -1 }, { name: 'type_history' }),
  ]);
}

/** What a read needs of a current or history document (no search arrays). */
export type VersionFields = Pick<CurrentDoc, 't' | 'id' | 'v' | 'lu' | 'del' | 'json' | 'm'>;

export function toVersion(d: VersionFields): ResourceVersion {
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
