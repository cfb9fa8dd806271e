import type { Resource } from '@medplum/fhirtypes';
import jsonpatch, { type Operation } from 'fast-json-patch';
import type { AccessContext } from './auth/access-policy.js';
import { errors, isOperationOutcomeError } from './fhir/outcomes.js';
import type { SearchRequest, SearchResult } from './fhir/search/engine.js';
import type { FhirRepository } from './fhir/storage/repository.js';
import { parseResource, type HistoryPage, type HistoryQuery, type ResourceVersion, type WriteOptions, type WriteResult } from './fhir/storage/types.js';

/** What a guard is told about one write. */
export interface GuardContext {
  /** The caller's repository inside the write's unit of work (dependent writes go through it, atomically). */
  tx: FhirRepository;
  access: AccessContext;
  /** The version being replaced (updates, patches, deletes). */
  current?: Resource;
}

/**
 * A domain rule on plain writes of some resource types, so that REST, Bundles and operations cannot skip it:
 * `prepare` checks (throwing an OperationOutcome refuses the write) and may return the resource to store;
 * `within` makes dependent writes in the same unit of work (all or nothing); `committed` runs after it and
 * must not fail the request (queue a job, do not send mail inline).
 */
export interface WriteGuard {
  types: string[];
  /** Whether the guard looks at this caller's writes of `type` at all (default: always). */
  appliesTo?(type: string, access: AccessContext): boolean;
  prepare?(resource: Resource, ctx: GuardContext): Promise<Resource>;
  /** A delete of a guarded resource (`current` is set): throw to refuse. */
  remove?(ctx: GuardContext & { current: Resource }): Promise<void>;
  within?(stored: Resource, ctx: GuardContext): Promise<void>;
  committed?(stored: Resource, access: AccessContext): Promise<void>;
}


/**
 * The caller's repository with the insurance, onboarding and prescription rules around it (see each module's
 * guard). Every write of a guarded type becomes one unit of work: prepare → write → dependent writes.
 * Conditional updates and patches are resolved to plain updates first, so a guard always sees the result.
 */
export class GuardedRepository implements FhirRepository {
  readonly supportsTransactions: boolean;

  constructor(
    private readonly inner: FhirRepository,
    private readonly access: AccessContext,
    private readonly guards: WriteGuard[],
    /** Inside a transaction: follow-ups wait here until it has committed (a job queued earlier could run first and see nothing). */
    private readonly afterCommit?: (() => Promise<void>)[],
  ) {
    this.supportsTransactions = inner.supportsTransactions;
  }

  private guardsOf(type: string | undefined): WriteGuard[] {
    return type ? this.guards.filter((g) => g.types.includes(type) && (!g.appliesTo || g.appliesTo(type, this.access))) : [];
  }

  async create(resource: Resource, opts: { ifNoneExist?: string; id?: string } = {}): Promise<WriteResult> {
    const guards = this.guardsOf(resource?.resourceType);
    if (!guards.length) return this.inner.create(resource, opts);
    return this.guarded(guards, async (tx) => {
      let next = resource;
      for (const g of guards) if (g.prepare) next = await g.prepare(next, { tx, access: this.access });
      return tx.create(next, opts);
    });
  }

  async update(resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    const guards = this.guardsOf(resource?.resourceType);
    if (!guards.length) return this.inner.update(resource, opts);
    return this.guarded(guards, async (tx) => {
      const current = resource.id ? await currentOf(tx, resource.resourceType, resource.id) : undefined;
      let next = resource;
      for (const g of guards) if (g.prepare) next = await g.prepare(next, { tx, access: this.access, current });
      return tx.update(next, opts);
    });
  }

  async conditionalUpdate(type: string, criteria: string, resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    if (!this.guardsOf(type).length) return this.inner.conditionalUpdate(type, criteria, resource, opts);
    const matches = await this.inner.findByCriteria(type, criteria, 2);
    if (matches.length > 1) throw errors.preconditionFailed(`Conditional update criteria '${criteria}' matched more than one ${type}`);
    if (matches.length === 1) return this.update({ ...resource, id: matches[0]!.id } as Resource, opts);
    return resource.id ? this.update(resource, opts) : this.create(resource);
  }

  async patch(type: string, id: string, operations: Operation[], opts: WriteOptions = {}): Promise<WriteResult> {
    if (!this.guardsOf(type).length || !Array.isArray(operations)) return this.inner.patch(type, id, operations, opts);
    const current = await this.inner.read(type, id);
    let patched: Resource;
    try {
      patched = jsonpatch.applyPatch(parseResource(current), operations, true, false).newDocument as Resource;
    } catch {
      return this.inner.patch(type, id, operations, opts); // the repository reports the patch error
    }
    if (patched?.resourceType !== type || patched.id !== id) throw errors.badRequest('A patch may not change resourceType or id');
    return this.update(patched, { ifMatch: opts.ifMatch ?? current.versionId });
  }

  async delete(type: string, id: string, opts?: WriteOptions): Promise<ResourceVersion | undefined> {
    const guards = this.guardsOf(type).filter((g) => g.remove);
    if (!guards.length) return this.inner.delete(type, id, opts);
    const current = await currentOf(this.inner, type, id);
    if (current) for (const g of guards) await g.remove!({ tx: this.inner, access: this.access, current });
    return this.inner.delete(type, id, opts);
  }

  async conditionalDelete(type: string, criteria: string): Promise<ResourceVersion | undefined> {
    if (!this.guardsOf(type).some((g) => g.remove)) return this.inner.conditionalDelete(type, criteria);
    const matches = await this.inner.findByCriteria(type, criteria, 2);
    if (matches.length > 1) throw errors.preconditionFailed(`Conditional delete criteria '${criteria}' matched more than one ${type}`);
    return matches.length ? this.delete(type, matches[0]!.id) : undefined;
  }

  read(type: string, id: string): Promise<ResourceVersion> {
    return this.inner.read(type, id);
  }
  vread(type: string, id: string, versionId: string): Promise<ResourceVersion> {
    return this.inner.vread(type, id, versionId);
  }
  history(q: HistoryQuery): Promise<HistoryPage> {
    return this.inner.history(q);
  }
  async transaction<T>(fn: (tx: FhirRepository) => Promise<T>): Promise<T> {
    if (this.afterCommit) return this.inner.transaction((tx) => fn(new GuardedRepository(tx, this.access, this.guards, this.afterCommit)));
    const later: (() => Promise<void>)[] = [];
    const out = await this.inner.transaction((tx) => fn(new GuardedRepository(tx, this.access, this.guards, later)));
    for (const f of later) await f();
    return out;
  }
  storedTypes(): Promise<string[]> {
    return this.inner.storedTypes();
  }
  search(req: SearchRequest): Promise<SearchResult> {
    return this.inner.search(req);
  }
  findByCriteria(type: string, criteria: string, limit: number): Promise<ResourceVersion[]> {
    return this.inner.findByCriteria(type, criteria, limit);
  }

  /** One unit of work: the write and the guards' dependent writes; then the guards' follow-ups. */
  private async guarded(guards: WriteGuard[], write: (tx: FhirRepository) => Promise<WriteResult>): Promise<WriteResult> {
    // A unit of work only where a guard writes beside the resource.
    const result = !guards.some((g) => g.within) ? await write(this.inner) : await this.inner.transaction(async (tx) => {
      const r = await write(tx);
      if (r.matched || !r.version.json) return r;
      const stored = parseResource(r.version);
      for (const g of guards) await g.within?.(stored, { tx, access: this.access });
      return r;
    });
    if (!result.matched && result.version.json) {
      const stored = parseResource(result.version);
      const followUps = async () => {
        for (const g of guards) await g.committed?.(stored, this.access);
      };
      if (this.afterCommit) this.afterCommit.push(followUps);
      else await followUps();
    }
    return result;
  }
}

async function currentOf(repo: FhirRepository, type: string, id: string): Promise<Resource | undefined> {
  try {
    return parseResource(await repo.read(type, id));
  } catch (err) {
    if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) return undefined;
    throw err;
  }
}

/**
 * A backend service with `system/` scopes that acts for no one in particular (an EHR import, a lab): it
 * records what was decided elsewhere, so the workflow rules of people (who may prescribe, what a desk
 * must enter) do not apply to it; structure and profile validation still do. A client bound to an insurer
 * is not such an integration.
 */
export function isTrustedIntegration(access: AccessContext): boolean {
  return !access.accountId && !access.payor && !access.patient && !access.fhirUser;
}

/** A reference's `Type/id` when it is a plain relative reference of that type. */
export function referenceId(ref: { reference?: string } | undefined, type: string): string | undefined {
  const m = /^([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(ref?.reference ?? '');
  return m && m[1] === type ? m[2] : undefined;
}

