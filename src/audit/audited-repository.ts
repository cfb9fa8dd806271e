import type { Resource } from '@medplum/fhirtypes';
import type { Operation } from 'fast-json-patch';
import { errors } from '../fhir/outcomes.js';
import type { SearchRequest, SearchResult } from '../fhir/search/engine.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { HistoryPage, HistoryQuery, ResourceVersion, WriteOptions, WriteResult } from '../fhir/storage/types.js';
import { auditContext, type AuditFrame, type RequestAudit } from './request-audit.js';
import { AUDIT_TYPE } from './store.js';

const immutable = () => errors.methodNotAllowed('AuditEvents are written by the server only; they cannot be created, updated or deleted through the API', ['GET']);

/**
 * The caller's repository with the audit trail around it: reads, searches and history are noted on the
 * request's record; writes run in a frame whose side-write records are voided if the write fails; AuditEvents
 * are read-only (405) and readable by auditors only (403).
 */
export class AuditedRepository implements FhirRepository {
  readonly supportsTransactions: boolean;

  constructor(
    private readonly inner: FhirRepository,
    /** The request whose record reads are noted on; none for the server's own repository. */
    private readonly request: RequestAudit | undefined,
    private readonly auditor: boolean,
    /** Called when an outermost write ends: voids the write-chain records whose version was not stored. */
    private readonly finish: (frame: AuditFrame, failed: boolean) => Promise<void>,
  ) {
    this.supportsTransactions = inner.supportsTransactions;
  }

  get wrapped(): FhirRepository {
    return this.inner;
  }

  private readable(type: string | undefined): void {
    if (type === AUDIT_TYPE && !this.auditor) throw errors.forbidden('Only system administrators (or system/AuditEvent.read clients) may read AuditEvents; patients use Patient/[id]/$access-log');
  }

  private async write<T>(type: string | undefined, fn: () => Promise<T>): Promise<T> {
    if (type === AUDIT_TYPE) throw immutable();
    const frame: AuditFrame = { parent: auditContext.getStore(), request: this.request, seqs: [] };
    let failed = true;
    try {
      const out = await auditContext.run(frame, fn);
      failed = false;
      return out;
    } finally {
      // Inner frames hand their records up: only the outermost one knows what finally committed.
      if (frame.parent) frame.parent.seqs.push(...frame.seqs);
      else if (frame.seqs.length) await this.finish(frame, failed);
    }
  }

  create(resource: Resource, opts?: { ifNoneExist?: string; id?: string }): Promise<WriteResult> {
    return this.write(resource?.resourceType, () => this.inner.create(resource, opts));
  }

  update(resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    return this.write(resource?.resourceType, () => this.inner.update(resource, opts));
  }

  conditionalUpdate(type: string, criteria: string, resource: Resource, opts?: WriteOptions): Promise<WriteResult> {
    return this.write(type, () => this.inner.conditionalUpdate(type, criteria, resource, opts));
  }

  patch(type: string, id: string, operations: Operation[], opts?: WriteOptions): Promise<WriteResult> {
    return this.write(type, () => this.inner.patch(type, id, operations, opts));
  }

  delete(type: string, id: string, opts?: WriteOptions): Promise<ResourceVersion | undefined> {
    return this.write(type, () => this.inner.delete(type, id, opts));
  }

  conditionalDelete(type: string, criteria: string): Promise<ResourceVersion | undefined> {
    return this.write(type, () => this.inner.conditionalDelete(type, criteria));
  }

  transaction<T>(fn: (tx: FhirRepository) => Promise<T>): Promise<T> {
    return this.write(undefined, () => this.inner.transaction((tx) => fn(new AuditedRepository(tx, this.request, this.auditor, this.finish))));
  }

  async read(type: string, id: string): Promise<ResourceVersion> {
    this.readable(type);
    const v = await this.inner.read(type, id);
    this.request?.noteVersion(type, id, v.json);
    return v;
  }

  async vread(type: string, id: string, versionId: string): Promise<ResourceVersion> {
    this.readable(type);
    const v = await this.inner.vread(type, id, versionId);
    this.request?.noteVersion(type, id, v.json, versionId);
    return v;
  }

  async history(query: HistoryQuery): Promise<HistoryPage> {
    this.readable(query.resourceType);
    const page = await this.inner.history(query);
    if (this.request) this.request.touched = true;
    for (const v of page.versions) this.request?.noteVersion(v.resourceType, v.id, v.json, v.versionId);
    return page;
  }

  async search(req: SearchRequest): Promise<SearchResult> {
    for (const t of req.types) this.readable(t);
    // A search over several types never lists AuditEvents (auditors search them by type).
    if (req.types.length > 1 && req.types.includes(AUDIT_TYPE)) req = { ...req, types: req.types.filter((t) => t !== AUDIT_TYPE) };
    const result = await this.inner.search(req);
    const where = req.compartment ? `${req.compartment.type}/${req.compartment.id}/` : '';
    this.request?.noteQuery(`${where}${req.types.length === 1 ? req.types[0] : ''}?${new URLSearchParams(req.params.filter(([k]) => k !== 'access_token')).toString()}`);
    for (const d of [...result.matches, ...result.included]) this.request?.noteVersion(d.t, d.id, d.json);
    return result;
  }

  async findByCriteria(type: string, criteria: string, limit: number, restrict?: SearchRequest['restrict']): Promise<ResourceVersion[]> {
    this.readable(type);
    const found = await this.inner.findByCriteria(type, criteria, limit, restrict);
    for (const v of found) this.request?.noteVersion(v.resourceType, v.id, v.json);
    return found;
  }

  /** Without AuditEvent: type-spanning reads ($everything, system search) never list the trail; auditors search it by type. */
  async storedTypes(): Promise<string[]> {
    return (await this.inner.storedTypes()).filter((t) => t !== AUDIT_TYPE);
  }
}
