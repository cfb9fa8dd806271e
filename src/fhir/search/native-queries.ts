import type { CurrentDoc, VersionFields } from '../storage/mongo/documents.js';

/**
 * An engine-specific way to run the search engine's `find(filter).sort(sort).limit(n)` on current
 * documents, beside the MongoDB driver. FerretDB 1.x decodes and sorts every match in its own memory
 * (it pushes down neither sort nor limit with a filter), so with its PostgreSQL at hand the same query
 * runs as SQL there (see infra/ferretdb-sql.ts). Answers `undefined` for a filter it cannot translate:
 * the engine then asks the driver, so results never depend on which path ran.
 */
export interface NativeQueries {
  find(collection: string, filter: Record<string, unknown>, opts: NativeFindOptions): Promise<CurrentDoc[] | undefined>;
  /** Number of documents matching `filter`. */
  count(collection: string, filter: Record<string, unknown>): Promise<number | undefined>;
  /**
   * The version fields of the document with this `_id` (no search arrays), null when there is none: read and
   * vread, whose document FerretDB would decode whole, search arrays included, to hand back a few fields.
   */
  byId(collection: string, id: string): Promise<VersionFields | null>;
}

export interface NativeFindOptions {
  sort?: Record<string, 1 | -1>;
  limit?: number;
  /**
   * Which fields the caller reads: `page` (the resource and what sorting, paging and exact checks look at:
   * everything but the string prefixes `st` and date ends `dh`, which only serve lookups), or `ids`.
   */
  fields: 'page' | 'ids';
}
