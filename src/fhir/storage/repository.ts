import type { Resource } from '@medplum/fhirtypes';
import type { Operation } from 'fast-json-patch';
import type { SearchRequest, SearchRestriction, SearchResult } from '../search/engine.js';
import type { HistoryPage, HistoryQuery, ResourceVersion, WriteOptions, WriteResult } from './types.js';

/**
 * The FHIR repository: every feature (REST, bundles, scheduling, billing) reads and writes through it,
 * so validation, versioning and (later) access policy apply to all of them alike. It knows nothing about HTTP.
 */
export interface FhirRepository {
  /** Whether multi-document writes run inside real engine transactions. */
  readonly supportsTransactions: boolean;
  /** The repository this one decorates, when it is a pass-through layer (so a module can find its own layer beneath). */
  readonly wrapped?: FhirRepository;
  /**
   * Creates a resource with a server-assigned id. `id` lets a transaction Bundle fix the new id in advance
   * (its entries reference each other before anything is written); the REST create never passes it.
   */
  create(resource: Resource, opts?: { ifNoneExist?: string; id?: string; restrict?: SearchRestriction }): Promise<WriteResult>;
  read(resourceType: string, id: string): Promise<ResourceVersion>;
  vread(resourceType: string, id: string, versionId: string): Promise<ResourceVersion>;
  update(resource: Resource, opts?: WriteOptions): Promise<WriteResult>;
  conditionalUpdate(resourceType: string, criteria: string, resource: Resource, opts?: WriteOptions): Promise<WriteResult>;
  patch(resourceType: string, id: string, operations: Operation[], opts?: WriteOptions): Promise<WriteResult>;
  /** Deletes a resource; resolves to undefined when there was nothing to delete (already gone or never existed). */
  delete(resourceType: string, id: string, opts?: WriteOptions): Promise<ResourceVersion | undefined>;
  conditionalDelete(resourceType: string, criteria: string): Promise<ResourceVersion | undefined>;
  history(query: HistoryQuery): Promise<HistoryPage>;
  /**
   * Runs `fn` as one atomic unit against a repository scoped to it: a real transaction where the engine
   * has them, otherwise apply-then-undo (every version written is rolled back if `fn` throws).
   */
  transaction<T>(fn: (tx: FhirRepository) => Promise<T>): Promise<T>;
  /** Resource types that have ever been stored (lets type-spanning operations skip empty types). */
  storedTypes(): Promise<string[]>;
  /** FHIR search (type, system or compartment level); see search/engine.ts. */
  search(req: SearchRequest): Promise<SearchResult>;
  /** Current (not deleted) resources matching search criteria, at most `limit` (0: only check the criteria). */
  findByCriteria(resourceType: string, criteria: string, limit: number, restrict?: SearchRestriction): Promise<ResourceVersion[]>;
}
