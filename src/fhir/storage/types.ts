import type { Resource } from '@medplum/fhirtypes';
import type { SearchRestriction } from '../search/engine.js';

/** One stored version of a resource, as the repository hands it out. The JSON text is what the client gets. */
export interface ResourceVersion {
  resourceType: string;
  id: string;
  versionId: string;
  /** FHIR instant. */
  lastUpdated: string;
  deleted: boolean;
  /** Serialized resource including `meta`; null for a deletion (tombstone). */
  json: string | null;
  /** Interaction that produced this version (history bundles report it as entry.request.method). */
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
}

export interface WriteResult {
  version: ResourceVersion;
  /** True when the write created the resource (201), false when it updated an existing one (200). */
  created: boolean;
  /** For conditional create: an existing resource matched and nothing was written. */
  matched?: boolean;
}

export interface WriteOptions {
  /** Expected current version (from If-Match); a mismatch fails with 412 and writes nothing. */
  ifMatch?: string;
  /** Conditional writes: the caller's reach; resources outside it are never matched (see auth/). */
  restrict?: SearchRestriction;
  /** Part of a bulk load ($import): the version is not stored in the resource cache, only invalidated there. */
  bulk?: boolean;
}

export interface HistoryQuery {
  resourceType?: string;
  id?: string;
  /** Only versions updated at or after this instant. */
  since?: Date;
  /** R4 `_at`: only versions that were current at some point in [start, end) (a partial date is a range). */
  at?: { start: Date; end: Date };
  count: number;
  /** Opaque keyset cursor from a previous page. */
  cursor?: string;
}

export interface HistoryPage {
  versions: ResourceVersion[];
  total: number;
  nextCursor?: string;
}

export function parseResource(v: ResourceVersion): Resource {
  if (v.json === null) throw new Error(`${v.resourceType}/${v.id} version ${v.versionId} is a deletion`);
  return JSON.parse(v.json) as Resource;
}

/** R4 id datatype: 1-64 characters of A-Z a-z 0-9 - . */
export const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
