import type { Resource, Subscription } from '@medplum/fhirtypes';
import jsonpatch, { type Operation } from 'fast-json-patch';
import type { AccessContext } from '../auth/access-policy.js';
import { errors } from '../fhir/outcomes.js';
import type { SearchRequest, SearchResult } from '../fhir/search/engine.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource, type HistoryPage, type HistoryQuery, type ResourceVersion, type WriteOptions, type WriteResult } from '../fhir/storage/types.js';
import { EXT } from './backport.js';
import type { SubscriptionDirectory } from './directory.js';
import type { EndpointPolicy } from './endpoint-policy.js';
import { ownerExtension, readOwner } from './subscription-spec.js';
import type { WatchedTypes } from './watched-types.js';

export interface SubscriptionWritePorts {
  directory: SubscriptionDirectory;
  policy: EndpointPolicy;
  /** Whether an email channel can be served (a mailer is configured). */
  emailAvailable: boolean;
  watched: WatchedTypes;
}

/**
 * Subscription writes through REST, Bundles or operations: the Subscription is checked (criteria, channel,
 * endpoint allow-list) before anything is stored; `requested` becomes `active` (for changes from a propagation
 * bound on, see watched-types.ts); and the writer's access context is recorded on it, so that it only ever notifies about what that token may read. A client cannot set
 * the owner itself, nor the `error` status.
 */
export class SubscriptionWrites implements FhirRepository {
  readonly supportsTransactions: boolean;

  constructor(private readonly inner: FhirRepository, private readonly access: AccessContext, private readonly ports: SubscriptionWritePorts) {
    this.supportsTransactions = inner.supportsTransactions;
  }

  /** System access and system administrators see every Subscription; anyone else only their own. */
  private seesAll(): boolean {
    return this.access.role === 'system-admin' || this.access.scopes.some((sc) => sc.context === 'system');
  }

  private owns(sub: Subscription): boolean {
    if (this.seesAll()) return true;
    const owner = readOwner(sub)?.access;
    if (!owner) return false;
    return owner.accountId ? owner.accountId === this.access.accountId : !this.access.accountId && owner.clientId === this.access.clientId;
  }

  /** A Subscription of someone else is reported as not known (its channel headers may hold the receiver's secrets). */
  private guard(v: ResourceVersion): ResourceVersion {
    if (v.resourceType === 'Subscription' && v.json && !this.owns(parseResource(v) as Subscription)) throw errors.notFound(`Subscription/${v.id} is not known`);
    return v;
  }

  private async prepare(resource: Resource, current?: Subscription): Promise<Subscription> {
    if (current && !this.owns(current)) throw errors.notFound(`Subscription/${current.id} is not known`);
    const sub = { ...(resource as Subscription), extension: (resource as Subscription).extension?.filter((e) => e.url !== EXT.owner) };
    if (!sub.extension?.length) delete sub.extension;
    if (sub.status === 'error' && current?.status !== 'error') throw errors.businessRule('Subscription.status error is set by the server when delivery fails', ['Subscription.status']);
    const spec = this.ports.directory.spec(sub);
    if (spec.channel.type === 'rest-hook') await this.ports.policy.check(spec.channel.endpoint);
    if (spec.channel.type === 'email' && !this.ports.emailAvailable) throw errors.businessRule('The email channel needs SMTP_URL to be configured', ['Subscription.channel.type']);
    const activating = sub.status === 'requested' || sub.status === 'active';
    if (activating) {
      sub.status = 'active';
      delete sub.error;
    }
    // Events from changes committed once every process knows of it (watched-types.ts); an update of an active
    // subscription about the same type keeps its start.
    const previous = current?.status === 'active' && this.ports.directory.spec(current).resourceType === spec.resourceType ? readOwner(current) : undefined;
    const since = previous?.since ?? new Date(Date.now() + this.ports.watched.propagationMs).toISOString();
    if (activating) this.ports.watched.add(spec.resourceType);
    sub.extension = [...(sub.extension ?? []), ownerExtension({ access: this.access, since })];
    return sub;
  }

  private async currentSubscription(id: string | undefined): Promise<Subscription | undefined> {
    if (!id) return undefined;
    try {
      const v = await this.inner.read('Subscription', id);
      return parseResource(v) as Subscription;
    } catch (err) {
      if ([404, 410].includes((err as { status?: number }).status ?? 0)) return undefined;
      throw err;
    }
  }

  async create(resource: Resource, opts?: { ifNoneExist?: string; id?: string }): Promise<WriteResult> {
    if (resource?.resourceType === 'Subscription') return this.inner.create(await this.prepare(resource), opts);
    return this.inner.create(resource, opts);
  }

  async update(resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    if (resource?.resourceType === 'Subscription') return this.inner.update(await this.prepare(resource, await this.currentSubscription(resource.id)), opts);
    return this.inner.update(resource, opts);
  }

  async conditionalUpdate(type: string, criteria: string, resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    if (type === 'Subscription') {
      const found = await this.inner.findByCriteria(type, criteria, 2);
      if (found.length > 1) throw errors.preconditionFailed(`Conditional update criteria '${criteria}' matched more than one ${type}`);
      if (found.length === 1) return this.update({ ...resource, id: found[0]!.id } as Resource, opts);
      return this.inner.conditionalUpdate(type, criteria, await this.prepare(resource), opts);
    }
    return this.inner.conditionalUpdate(type, criteria, resource, opts);
  }

  async patch(type: string, id: string, operations: Operation[], opts?: WriteOptions): Promise<WriteResult> {
    if (type !== 'Subscription') return this.inner.patch(type, id, operations, opts);
    const current = await this.inner.read(type, id);
    let patched: Resource;
    try {
      patched = jsonpatch.applyPatch(structuredClone(parseResource(current)), operations, true, false).newDocument as Resource;
    } catch {
      return this.inner.patch(type, id, operations, opts); // the repository reports the patch error
    }
    if (opts?.ifMatch && opts.ifMatch !== current.versionId) return this.inner.patch(type, id, operations, opts);
    return this.update({ ...patched, id }, { ...opts, ifMatch: current.versionId });
  }

  async read(type: string, id: string): Promise<ResourceVersion> {
    return this.guard(await this.inner.read(type, id));
  }
  async vread(type: string, id: string, versionId: string): Promise<ResourceVersion> {
    return this.guard(await this.inner.vread(type, id, versionId));
  }
  async delete(type: string, id: string, opts?: WriteOptions): Promise<ResourceVersion | undefined> {
    if (type === 'Subscription') {
      const current = await this.currentSubscription(id);
      if (current && !this.owns(current)) throw errors.notFound(`Subscription/${id} is not known`);
    }
    return this.inner.delete(type, id, opts);
  }
  conditionalDelete(type: string, criteria: string): Promise<ResourceVersion | undefined> {
    return this.inner.conditionalDelete(type, criteria);
  }
  async history(q: HistoryQuery): Promise<HistoryPage> {
    if (q.resourceType === 'Subscription' && !this.seesAll()) {
      if (!q.id) throw errors.forbidden('History across Subscriptions needs system access; read your own Subscriptions by id');
      await this.read('Subscription', q.id).catch(async (err) => {
        if ((err as { status?: number }).status !== 410) throw err;
      });
    }
    return this.inner.history(q);
  }
  transaction<T>(fn: (tx: FhirRepository) => Promise<T>): Promise<T> {
    return this.inner.transaction((tx) => fn(new SubscriptionWrites(tx, this.access, this.ports)));
  }
  storedTypes(): Promise<string[]> {
    return this.inner.storedTypes();
  }
  search(req: SearchRequest): Promise<SearchResult> {
    if (req.types.length === 1 && req.types[0] === 'Subscription' && !this.seesAll()) {
      throw errors.forbidden('Searching Subscriptions needs system access; read your own Subscriptions by id');
    }
    return this.inner.search(req);
  }
  findByCriteria(type: string, criteria: string, limit: number): Promise<ResourceVersion[]> {
    return this.inner.findByCriteria(type, criteria, limit);
  }
}
