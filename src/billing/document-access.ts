import type { Binary, Resource } from '@medplum/fhirtypes';
import type { Operation } from 'fast-json-patch';
import type { AccessContext } from '../auth/access-policy.js';
import { errors, isOperationOutcomeError } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { SearchRequest, SearchRestriction, SearchResult } from '../fhir/search/engine.js';
import type { HistoryPage, HistoryQuery, ResourceVersion, WriteOptions, WriteResult } from '../fhir/storage/types.js';

/** The Invoice an invoice PDF belongs to (`Binary.securityContext`), if it is one. */
function invoiceOf(json: string | null | undefined): string | undefined {
  if (!json) return undefined;
  const ref = (JSON.parse(json) as Binary).securityContext?.reference;
  return ref?.startsWith('Invoice/') ? ref.slice('Invoice/'.length) : undefined;
}

/**
 * Invoice PDFs are patient data although Binary is outside the Patient compartment (which would let any Binary
 * scope read them): a Binary whose `securityContext` is an Invoice is read only by whoever may read that Invoice
 * (others: 404, and it is left out of searches and history), and changed or deleted only by administrators.
 * Wraps each request's scoped repository (server.ts, auth.decorate).
 */
export class InvoiceDocumentAccess implements FhirRepository {
  readonly supportsTransactions: boolean;

  constructor(
    private readonly inner: FhirRepository,
    private readonly access: AccessContext,
  ) {
    this.supportsTransactions = inner.supportsTransactions;
  }

  private async mayRead(json: string | null | undefined): Promise<boolean> {
    const invoice = invoiceOf(json);
    if (!invoice) return true;
    try {
      await this.inner.read('Invoice', invoice);
      return true;
    } catch (err) {
      if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410 || err.status === 403)) return false;
      throw err;
    }
  }

  private async checked(v: ResourceVersion): Promise<ResourceVersion> {
    if (v.resourceType === 'Binary' && !(await this.mayRead(v.json))) throw errors.notFound(`Binary/${v.id} is not known`);
    return v;
  }

  private get admin(): boolean {
    return this.access.role === 'system-admin' || (!this.access.accountId && this.access.scopes.some((s) => s.context === 'system'));
  }

  private async guardChange(type: string, id: string): Promise<void> {
    if (type !== 'Binary' || this.admin) return;
    let current: ResourceVersion | undefined;
    try {
      current = await this.inner.read('Binary', id);
    } catch {
      return; // nothing stored (or not readable): the inner repository answers
    }
    if (invoiceOf(current.json)) {
      if (!(await this.mayRead(current.json))) throw errors.notFound(`Binary/${id} is not known`);
      throw errors.forbidden(`Binary/${id} is an invoice document: it is written by billing only`);
    }
  }

  create(resource: Resource, opts?: { ifNoneExist?: string; id?: string; restrict?: SearchRestriction }): Promise<WriteResult> {
    if (resource.resourceType === 'Binary' && invoiceOf(JSON.stringify(resource)) && !this.admin) throw errors.forbidden('Invoice documents are written by billing only');
    return this.inner.create(resource, opts);
  }
  async read(type: string, id: string): Promise<ResourceVersion> {
    return this.checked(await this.inner.read(type, id));
  }
  async vread(type: string, id: string, versionId: string): Promise<ResourceVersion> {
    return this.checked(await this.inner.vread(type, id, versionId));
  }
  async update(resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    if (resource.id) await this.guardChange(resource.resourceType, resource.id);
    if (resource.resourceType === 'Binary' && invoiceOf(JSON.stringify(resource)) && !this.admin) throw errors.forbidden('Invoice documents are written by billing only');
    return this.inner.update(resource, opts);
  }
  conditionalUpdate(type: string, criteria: string, resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    if (type === 'Binary' && !this.admin) throw errors.forbidden('Conditional updates of Binary need administrator access');
    return this.inner.conditionalUpdate(type, criteria, resource, opts);
  }
  async patch(type: string, id: string, operations: Operation[], opts?: WriteOptions): Promise<WriteResult> {
    await this.guardChange(type, id);
    return this.inner.patch(type, id, operations, opts);
  }
  async delete(type: string, id: string, opts?: WriteOptions): Promise<ResourceVersion | undefined> {
    await this.guardChange(type, id);
    return this.inner.delete(type, id, opts);
  }
  conditionalDelete(type: string, criteria: string): Promise<ResourceVersion | undefined> {
    if (type === 'Binary' && !this.admin) throw errors.forbidden('Conditional deletes of Binary need administrator access');
    return this.inner.conditionalDelete(type, criteria);
  }
  async history(q: HistoryQuery): Promise<HistoryPage> {
    const page = await this.inner.history(q);
    if (q.resourceType && q.resourceType !== 'Binary') return page;
    const keep: ResourceVersion[] = [];
    for (const v of page.versions) if (v.resourceType !== 'Binary' || (await this.mayRead(v.json))) keep.push(v);
    if (q.id && page.versions.length && !keep.length) throw errors.notFound(`Binary/${q.id} is not known`);
    return { ...page, versions: keep, total: page.total - (page.versions.length - keep.length) };
  }
  transaction<T>(fn: (tx: FhirRepository) => Promise<T>): Promise<T> {
    return this.inner.transaction((tx) => fn(new InvoiceDocumentAccess(tx, this.access)));
  }
  storedTypes(): Promise<string[]> {
    return this.inner.storedTypes();
  }
  async search(req: SearchRequest): Promise<SearchResult> {
    const result = await this.inner.search(req);
    const filter = async (docs: SearchResult['matches']) => {
      const keep: SearchResult['matches'] = [];
      for (const d of docs) if (d.t !== 'Binary' || (await this.mayRead(d.json))) keep.push(d);
      return keep;
    };
    const matches = await filter(result.matches);
    const dropped = result.matches.length - matches.length;
    return { ...result, matches, included: await filter(result.included), ...(result.total !== undefined && dropped ? { total: result.total - dropped } : {}) };
  }
  async findByCriteria(type: string, criteria: string, limit: number, restrict?: SearchRestriction): Promise<ResourceVersion[]> {
    const found = await this.inner.findByCriteria(type, criteria, limit, restrict);
    if (type !== 'Binary') return found;
    const keep: ResourceVersion[] = [];
    for (const v of found) if (await this.mayRead(v.json)) keep.push(v);
    return keep;
  }
}
