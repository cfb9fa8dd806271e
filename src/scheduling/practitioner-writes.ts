import { randomUUID } from 'node:crypto';
import type { PractitionerRole, Resource } from '@medplum/fhirtypes';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { errors, isOperationOutcomeError } from '../fhir/outcomes.js';
import type { SearchRequest, SearchResult } from '../fhir/search/engine.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource, type HistoryPage, type HistoryQuery, type ResourceVersion, type WriteOptions, type WriteResult } from '../fhir/storage/types.js';
import type { AccessContext } from '../auth/access-policy.js';
import type { RenderedEmail } from '../notifications/templates.js';
import { claimLicences } from './licence-claims.js';
import { keepVerification, verificationStatus, withVerification } from './practitioner-extensions.js';

/** What the practitioner operations need beyond the caller's repository. */
export interface SchedulingPorts {
  /** The server's own repository (no caller scope): licence claims, Slots and Schedules derived from a role. */
  system: FhirRepository;
  /** Sends an e-mail after the write committed, retried, never failing the request. */
  notify(to: string, mail: RenderedEmail): void;
}

/**
 * The caller's repository with the onboarding rules inside, so that REST, Bundles and operations alike
 * cannot skip them: a PractitionerRole a practitioner writes is inactive and `pending` until `$verify`
 * (they may edit availability of a verified role, but not move it to another organization unverified), and
 * a Practitioner's licences are unique per issuer. Installed around every request's scoped repository.
 */
export class PractitionerWrites implements FhirRepository {
  readonly supportsTransactions: boolean;

  constructor(
    private readonly inner: FhirRepository,
    private readonly access: AccessContext,
    readonly ports: SchedulingPorts,
  ) {
    this.supportsTransactions = inner.supportsTransactions;
  }

  async create(resource: Resource, opts: { ifNoneExist?: string; id?: string } = {}): Promise<WriteResult> {
    if (resource?.resourceType === 'PractitionerRole' && this.bySelfService()) {
      return this.inner.create(withVerification({ ...resource, active: false }, 'pending'), opts);
    }
    if (resource?.resourceType === 'Practitioner') {
      if (opts.ifNoneExist !== undefined) {
        const found = await this.inner.findByCriteria('Practitioner', opts.ifNoneExist, 2);
        if (found.length === 1) return { version: found[0]!, created: false, matched: true };
      }
      // The id is fixed first so that the licence claim can name the practitioner before it exists.
      const id = opts.id ?? randomUUID();
      await claimLicences(this.ports.system, id, resource);
      return this.inner.create(resource, { ...opts, id });
    }
    return this.inner.create(resource, opts);
  }

  async update(resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    if (resource?.resourceType === 'PractitionerRole' && this.bySelfService()) {
      return this.inner.update(await this.selfServiceRole(resource), opts);
    }
    if (resource?.resourceType === 'Practitioner' && resource.id) await claimLicences(this.ports.system, resource.id, resource);
    return this.inner.update(resource, opts);
  }

  async conditionalUpdate(type: string, criteria: string, resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    if (!this.guarded(type)) return this.inner.conditionalUpdate(type, criteria, resource, opts);
    const matches = await this.inner.findByCriteria(type, criteria, 2);
    if (matches.length > 1) throw errors.preconditionFailed(`Conditional update criteria '${criteria}' matched more than one ${type}`);
    if (matches.length === 1) return this.update({ ...resource, id: matches[0]!.id } as Resource, opts);
    return resource.id ? this.update(resource, opts) : this.create(resource);
  }

  /** A guarded patch becomes an update of the patched resource, pinned to the version it was applied to. */
  async patch(type: string, id: string, operations: Operation[], opts: WriteOptions = {}): Promise<WriteResult> {
    if (!this.guarded(type) || !Array.isArray(operations)) return this.inner.patch(type, id, operations, opts);
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

  read(type: string, id: string): Promise<ResourceVersion> {
    return this.inner.read(type, id);
  }
  vread(type: string, id: string, versionId: string): Promise<ResourceVersion> {
    return this.inner.vread(type, id, versionId);
  }
  delete(type: string, id: string, opts?: WriteOptions): Promise<ResourceVersion | undefined> {
    return this.inner.delete(type, id, opts);
  }
  conditionalDelete(type: string, criteria: string): Promise<ResourceVersion | undefined> {
    return this.inner.conditionalDelete(type, criteria);
  }
  history(q: HistoryQuery): Promise<HistoryPage> {
    return this.inner.history(q);
  }
  transaction<T>(fn: (tx: FhirRepository) => Promise<T>): Promise<T> {
    return this.inner.transaction((tx) => fn(new PractitionerWrites(tx, this.access, this.ports)));
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

  /** Practitioners onboard themselves; administrators and backend services are trusted with roles. */
  private bySelfService(): boolean {
    return this.access.role === 'practitioner';
  }

  private guarded(type: string): boolean {
    return type === 'Practitioner' || (type === 'PractitionerRole' && this.bySelfService());
  }

  /**
   * A practitioner's write of a role: a verified role keeps its status while it stays with the same
   * organization (availability, fee and slot length are theirs to change); anything else is (re)submitted.
   */
  private async selfServiceRole(next: Resource): Promise<PractitionerRole> {
    const role = next as PractitionerRole;
    let current: PractitionerRole | undefined;
    try {
      current = parseResource(await this.inner.read('PractitionerRole', role.id!)) as PractitionerRole;
    } catch (err) {
      if (!(isOperationOutcomeError(err) && (err.status === 404 || err.status === 410))) throw err;
    }
    const sameOrganization = current && current.organization?.reference === role.organization?.reference;
    if (current && sameOrganization && verificationStatus(current) === 'verified') return keepVerification({ ...role, active: current.active }, current);
    return withVerification({ ...role, active: false }, 'pending');
  }
}

/** The scheduling ports of a request's repository (the composition root installs PractitionerWrites). */
export function schedulingPorts(repo: FhirRepository): SchedulingPorts {
  // Through pass-through layers (the audit trail records the request around the rules).
  for (let r: FhirRepository | undefined = repo; r; r = r.wrapped) if (r instanceof PractitionerWrites) return r.ports;
  throw new Error('The request repository has no scheduling ports (PractitionerWrites is not installed)');
}
