import type { ResourceVersion } from './types.js';

/**
 * A cache of current versions for read and vread (implemented in infra/resource-cache.ts). The repository
 * reads through it and invalidates on every write it commits; the protocol keeps a read after a successful
 * write from returning an older version, from any process:
 * - `lookup` returns the cached version, or a ticket (the key's invalidation epoch) when there is none;
 * - after reading the database, `fill` stores the version only if no write invalidated the key since the
 *   ticket was taken (so a slow reader cannot put back a version a writer has replaced);
 * - `invalidate` runs after the write committed (a new epoch, the entry dropped); `written` gives the versions
 *   that write made current, stored at once so the next read is served (filled on write). Such notifications
 *   can reach the store out of order (two processes writing one resource), so each key remembers the highest
 *   version number stored by a write and an older one never replaces it.
 * An implementation that cannot reach its store answers misses, and after a failed invalidation bypasses
 * itself until it has made every older entry unreachable.
 */
export interface ResourceCache {
  lookup(key: string): Promise<{ hit: ResourceVersion } | { ticket: string | undefined }>;
  fill(key: string, ticket: string | undefined, version: ResourceVersion): Promise<void>;
  invalidate(keys: string[], written?: ReadonlyMap<string, ResourceVersion>): Promise<void>;
}
