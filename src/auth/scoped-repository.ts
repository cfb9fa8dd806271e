import type { Resource } from '@medplum/fhirtypes';
import type { Operation } from 'fast-json-patch';
import jsonpatch from 'fast-json-patch';
import { errors } from '../fhir/outcomes.js';
import type { SearchRequest, SearchResult } from '../fhir/search/engine.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { HistoryPage, HistoryQuery, ResourceVersion, WriteOptions, WriteResult } from '../fhir/storage/types.js';
import { pinnedPatients, type AccessPolicy } from './access-policy.js';

type Obj = Record<string, unknown>;

/**
 * Workflow rules on plain writes, so REST and Bundles cannot bypass a domain workflow: a create may be
 * taken over (POST Appointment with a Slot books it), an update refused (an Appointment's status changes
 * only through its lifecycle operations).
 */
export interface WriteRules {
  create?(resource: Resource, repo: ScopedRepository, opts?: { id?: string }): Promise<WriteResult | undefined>;
  update?(current: Obj, next: Obj): void;
}
const parse = (v: ResourceVersion): Obj => JSON.parse(v.json!) as Obj;

/**
 * The repository a request gets: the same FHIR repository with the caller's access policy inside it, so
 * REST handlers, Bundles (each entry), `$everything`, includes and domain workflows cannot skip it.
 * A resource the caller may not read is reported as not found, and searches are narrowed rather than
 * filtered afterwards, so neither a read nor a search total reveals what exists outside the scopes.
 */
export class ScopedRepository implements FhirRepository {
  readonly supportsTransactions: boolean;

  constructor(
    private readonly inner: FhirRepository,
    readonly policy: AccessPolicy,
    private readonly rules: WriteRules = {},
  ) {
    this.supportsTransactions = inner.supportsTransactions;
  }

  async create(resource: Resource, opts?: { ifNoneExist?: string; id?: string }): Promise<WriteResult> {
    const type = resource.resourceType;
    const taken = opts?.ifNoneExist === undefined ? await this.rules.create?.(resource, this, opts) : undefined;
    if (taken) return taken;
    if (opts?.ifNoneExist !== undefined) this.policy.scopesFor(type, 's');
    await this.policy.require(type, opts?.id ?? '(new)', resource as unknown as Obj, 'c');
    if (opts?.ifNoneExist !== undefined) {
      // The repository's race-free conditional create, matching only within the caller's reach: a resource
      // outside it is neither returned nor revealed, so for them that is a plain create.
      return this.inner.create(resource, { ...opts, restrict: await this.policy.searchRestriction(type) });
    }
    return this.inner.create(resource, opts);
  }

  async read(type: string, id: string): Promise<ResourceVersion> {
    this.policy.scopesFor(type, 'r');
    const v = await this.inner.read(type, id);
    await this.policy.require(type, id, parse(v), 'r');
    return v;
  }

  async vread(type: string, id: string, versionId: string): Promise<ResourceVersion> {
    this.policy.scopesFor(type, 'r');
    await this.read(type, id).catch(async (err) => {
      // A deleted resource: its last stored version decides.
      if ((err as { status?: number }).status !== 410) throw err;
    });
    const v = await this.inner.vread(type, id, versionId);
    if (v.json) await this.policy.require(type, id, parse(v), 'r');
    return v;
  }

  async update(resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    const type = resource.resourceType;
    const id = resource.id!;
    const current = await this.checkExisting(type, id, 'u');
    if (current) this.rules.update?.(parse(current), resource as unknown as Obj);
    else {
      // Update-as-create follows the same workflow rules as a create.
      const taken = await this.rules.create?.(resource, this, { id });
      if (taken) return taken;
    }
    await this.policy.require(type, id, resource as unknown as Obj, 'u'); // SMART: update-as-create is `u` too
    return this.inner.update(resource, opts);
  }

  async conditionalUpdate(type: string, criteria: string, resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    this.policy.scopesFor(type, 's');
    const restrict = await this.policy.searchRestriction(type);
    const matches = await this.inner.findByCriteria(type, criteria, 2, restrict);
    if (matches.length > 1) throw errors.preconditionFailed(`Conditional update criteria '${criteria}' matched more than one ${type}`);
    if (matches.length === 1) return this.update({ ...resource, id: matches[0]!.id } as Resource, opts);
    await this.policy.require(type, resource.id ?? '(new)', resource as unknown as Obj, 'c');
    // The repository's race-free conditional update, matching only within the caller's reach: what lies
    // outside it must not be matched (it would be overwritten) nor revealed, so no match there means create.
    // With an id in the body no match means an update of that id, which must be checked like any update.
    if (resource.id) return this.update(resource, opts);
    return this.inner.conditionalUpdate(type, criteria, resource, { ...opts, restrict });
  }

  async patch(type: string, id: string, operations: Operation[], opts?: WriteOptions): Promise<WriteResult> {
    const current = await this.checkExisting(type, id, 'u');
    if (!current) return this.inner.patch(type, id, operations, opts); // its 404/410/412, as without scopes
    // The patched content must stay within reach too (e.g. not move an Observation to another patient).
    let patched: Obj;
    try {
      patched = jsonpatch.applyPatch(structuredClone(parse(current)), operations, true, false).newDocument as Obj;
    } catch {
      return this.inner.patch(type, id, operations, opts); // the repository reports the patch error
    }
    this.rules.update?.(parse(current), patched);
    await this.policy.require(type, id, patched, 'u');
    return this.inner.patch(type, id, operations, opts);
  }

  async delete(type: string, id: string, opts?: WriteOptions): Promise<ResourceVersion | undefined> {
    await this.checkExisting(type, id, 'd');
    return this.inner.delete(type, id, opts);
  }

  async conditionalDelete(type: string, criteria: string): Promise<ResourceVersion | undefined> {
    this.policy.scopesFor(type, 's');
    const matches = await this.inner.findByCriteria(type, criteria, 2, await this.policy.searchRestriction(type));
    if (matches.length > 1) throw errors.preconditionFailed(`Conditional delete criteria '${criteria}' matched more than one ${type}`);
    if (!matches.length) return undefined;
    return this.delete(type, matches[0]!.id);
  }

  async history(q: HistoryQuery): Promise<HistoryPage> {
    if (q.id && q.resourceType) await this.read(q.resourceType, q.id).catch(async (err) => {
      if ((err as { status?: number }).status !== 410) throw err;
    });
    else this.policy.requireUnconfined(q.resourceType);
    return this.inner.history(q);
  }

  async search(req: SearchRequest): Promise<SearchResult> {
    if (req.types.length !== 1) {
      // System search: only the types the caller may search, each within its reach.
      const allowed = req.types.filter((t) => this.policy.access.scopes.some((s) => (s.type === '*' || s.type === t) && s.permissions.has('s')));
      if (!allowed.length) this.policy.scopesFor(req.types[0] ?? 'Resource', 's');
      const restrictions = await Promise.all(allowed.map((t) => this.policy.searchRestriction(t)));
      if (restrictions.some((r) => JSON.stringify(r) !== JSON.stringify(restrictions[0]))) {
        throw errors.forbidden('These types are within different reaches of the access token; search them one at a time');
      }
      return this.filterIncludes(await this.inner.search({ ...req, types: allowed, restrict: restrictions[0] }));
    }
    const restrict = await this.policy.searchRestriction(req.types[0]!, pinnedPatients(req.types[0]!, req.params, req.compartment));
    return this.filterIncludes(await this.inner.search({ ...req, restrict }));
  }

  async findByCriteria(type: string, criteria: string, limit: number): Promise<ResourceVersion[]> {
    return this.inner.findByCriteria(type, criteria, limit, await this.policy.searchRestriction(type));
  }

  transaction<T>(fn: (tx: FhirRepository) => Promise<T>): Promise<T> {
    return this.inner.transaction((tx) => fn(new ScopedRepository(tx, this.policy, this.rules)));
  }

  storedTypes(): Promise<string[]> {
    return this.inner.storedTypes();
  }

  /** Included resources the caller may not read are left out (they were not asked for by id). */
  private async filterIncludes(result: SearchResult): Promise<SearchResult> {
    if (!result.included.length) return result;
    const kept = [];
    for (const d of result.included) {
      const readable = this.policy.access.scopes.some((s) => (s.type === '*' || s.type === d.t) && s.permissions.has('r'));
      if (readable && d.json && (await this.policy.permits(d.t, d.id, JSON.parse(d.json) as Obj, 'r'))) kept.push(d);
    }
    return { ...result, included: kept };
  }

  /** The current version, if any, after checking the caller may change it; a resource they cannot read is "not found". */
  private async checkExisting(type: string, id: string, permission: 'u' | 'd'): Promise<ResourceVersion | undefined> {
    this.policy.scopesFor(type, permission);
    let current: ResourceVersion | undefined;
    try {
      current = await this.inner.read(type, id);
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 404 || status === 410) return undefined;
      throw err;
    }
    const resource = parse(current);
    if (!(await this.policy.permits(type, id, resource, 'r')) && !(await this.policy.permits(type, id, resource, permission))) {
      throw errors.notFound(`${type}/${id} is not known`);
    }
    await this.policy.require(type, id, resource, permission);
    return current;
  }
}
