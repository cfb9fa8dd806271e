import type { Context, Middleware, Next } from 'koa';
import type { AccessContext } from '../auth/access-policy.js';
import type { AccountDirectory } from '../auth/accounts-port.js';
import { errors } from '../fhir/outcomes.js';
import type { Collections } from '../fhir/storage/mongo/documents.js';
import type { Indexer } from '../fhir/search/index-entry.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { SideWriteHook } from '../fhir/storage/side-writes.js';
import type { Logger } from '../infra/logger.js';
import { AuditedRepository } from './audited-repository.js';
import { writerId } from './chain.js';
import { AUDIT_SUBTYPE_SYSTEM, auditEvent, codes, outcomeOf, type Actor, type EventSpec } from './events.js';
import { interactionOf } from './interaction.js';
import { patientsOf } from './patients.js';
import { auditContext, frameRequest, RequestAudit, type AuditFrame } from './request-audit.js';
import { AUDIT_TYPE, AuditStore } from './store.js';
import { ReadAggregator } from './read-aggregator.js';

export interface AuditConfig {
  enabled: boolean;
  failClosed: boolean;
  flushMs: number;
  flushRecords: number;
  hmacKey: string | undefined;
  /** One record per agent and flush window for successful reads by id (read-aggregator.ts). */
  aggregateReads: boolean;
}

/**
 * The record of a request in flight, on its (Koa) headers object, which the FHIR request carries on to the
 * repository factory. A symbol property rather than a WeakMap, whose entry per request costs about 3 µs on
 * Node 22 (set, then cleared by the garbage collector), forty times a property.
 */
const REQUEST_AUDIT = Symbol('medivoy.requestAudit');

/** A path without its leading and trailing slashes. */
function trimSlashes(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s.charCodeAt(a) === 47) a++;
  while (b > a && s.charCodeAt(b - 1) === 47) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** The server itself (jobs, workflows acting for the organization) when no request is behind a write. */
const SERVER: Actor = { clientId: 'medivoy-server' };
const WRITE_CODES = { POST: ['create', 'C'], PUT: ['update', 'U'], PATCH: ['patch', 'U'], DELETE: ['delete', 'D'] } as const;

/** System administrators and backend clients with a system/ scope on AuditEvent may read the trail. */
export function isAuditor(access: AccessContext | undefined): boolean {
  if (!access) return false;
  if (access.role === 'system-admin') return true;
  return !access.accountId && access.scopes.some((s) => s.context === 'system' && (s.type === AUDIT_TYPE || s.type === '*') && (s.permissions.has('r') || s.permissions.has('s')));
}

/**
 * The audit trail (IHE BALP AuditEvents): a request middleware, the caller's repository wrapper, a side-write
 * hook for every version written, and the sign-in and token events of the authorization server.
 */
export class AuditTrail {
  readonly store: AuditStore;
  readonly writer = writerId();
  private site = '';
  private readonly reads: ReadAggregator;

  constructor(
    private readonly o: { collections: Collections; indexer: Indexer; config: AuditConfig; logger: Logger },
  ) {
    this.reads = new ReadAggregator((spec) => this.record(spec));
    this.store = new AuditStore({ ...o.config, collections: o.collections, indexer: o.indexer, writer: this.writer, logger: o.logger, beforeFlush: () => this.reads.drain() });
  }

  async start(): Promise<void> {
    await this.store.start();
    // The trail follows each request and write with AsyncLocalStorage, which on Node 22 slows every await of
    // the process by a promise hook unless AsyncContextFrame is on (default from Node 24).
    const flag = '--experimental-async-context-frame';
    const frames = Number(process.versions.node.split('.')[0]) >= 24 || process.execArgv.includes(flag) || (process.env.NODE_OPTIONS ?? '').includes(flag);
    if (!frames) this.o.logger.warn(`audit trail on Node ${process.versions.node} without ${flag}: every await costs a promise hook (start node with ${flag}, as npm start and the Docker image do)`);
  }

  /** The public FHIR base, once known (AuditEvent.source.site). */
  setSite(site: string): void {
    this.site = site;
  }

  close(): Promise<void> {
    return this.store.close();
  }

  private event(spec: EventSpec) {
    return auditEvent(spec, { site: this.site, observer: this.writer });
  }

  record(spec: EventSpec): void {
    this.store.enqueue(this.event(spec));
  }

  /** One record per version the repository writes, in the same unit of work (fhir/storage/side-writes.ts). */
  readonly hook: SideWriteHook = ({ version, previous }) => {
    if (version.resourceType === AUDIT_TYPE) return [];
    const frame = auditContext.getStore();
    const request = frameRequest(frame);
    const [code, action] = WRITE_CODES[version.method];
    const { resourceType: t, id, versionId: v } = version;
    const sw = this.store.sideWrite(this.event({
      type: codes.rest, subtype: codes.interaction(code), action, outcome: '0',
      actor: request?.actor ?? SERVER, requestId: request?.requestId,
      resources: [`${t}/${id}/_history/${v}`], patients: patientsOf(t, id, version.json ?? previous?.json ?? null),
    }));
    frame?.seqs.push({ seq: sw.doc.as, hash: sw.doc.ah, id: sw.doc._id, resource: `${t}/${id}` });
    return [sw];
  };

  /**
   * After an outermost write: the records of versions that were not stored (the write failed, or a retry
   * replaced an attempt) get a void record in the same chain, so `audit-verify` can tell a rolled-back write
   * from a removed record. Done at once, before the caller hears of the failure.
   */
  private readonly finish = async (frame: AuditFrame, failed: boolean): Promise<void> => {
    let gone = frame.seqs;
    if (!failed) {
      const last = new Map(frame.seqs.map((s) => [s.resource, s.seq]));
      const replaced = frame.seqs.filter((s) => last.get(s.resource) !== s.seq);
      gone = [];
      for (const s of replaced) if (!(await this.store.collection.findOne({ _id: s.id }, { projection: { _id: 1 } }))) gone.push(s);
    }
    if (!gone.length) return;
    const request = frameRequest(frame);
    const docs = gone.map((s) => this.store.toDoc(this.event({
      type: codes.rest, subtype: { system: AUDIT_SUBTYPE_SYSTEM, code: 'write-not-committed' }, action: 'E', outcome: '4',
      outcomeDesc: `The write of ${s.resource} recorded as ${s.id} (chain position ${s.seq}) was not committed`,
      actor: request?.actor ?? SERVER, requestId: request?.requestId, resources: [s.resource],
    }), this.store.writeChain, { seq: s.seq, hash: s.hash }));
    try {
      await this.store.collection.insertMany(docs, { ordered: true });
    } catch (err) {
      this.o.logger.error({ err, records: docs.map((d) => d._id) }, 'void audit records could not be stored: audit-verify will report a gap');
    }
  };

  /** The server's own repository, audited for its writes (jobs and workflows write through it). */
  system(repo: FhirRepository): FhirRepository {
    return new AuditedRepository(repo, undefined, true, this.finish);
  }

  /** The repository of the request being served (found by its headers object), for the caller `access`. */
  repository(repo: FhirRepository, access: AccessContext, headers: object): FhirRepository {
    const request = (headers as { [REQUEST_AUDIT]?: RequestAudit })[REQUEST_AUDIT];
    if (request) request.actor = { clientId: access.clientId, accountId: access.accountId, fhirUser: access.fhirUser, role: access.role, ip: request.actor.ip };
    return new AuditedRepository(repo, request, isAuditor(access), this.finish);
  }

  /**
   * The repository of a background job acting for a caller (a Bulk Data export or import slice): what it
   * reads and writes is recorded like a request of that caller, one record per unit of work when `done` is
   * called (operation `operation`, the query, the patients whose data it reached, the first resources).
   */
  job(repo: FhirRepository, access: AccessContext, operation: string, requestId?: string): { repo: FhirRepository; done(failed: boolean): void } {
    const request = new RequestAudit(requestId, '');
    request.actor = { clientId: access.clientId, accountId: access.accountId, fhirUser: access.fhirUser, role: access.role };
    return {
      repo: new AuditedRepository(repo, request, isAuditor(access), this.finish),
      done: (failed) => {
        if (!request.touched) return;
        this.record({
          type: codes.rest, subtype: codes.operation(operation), action: operation === 'import' ? 'C' : 'R', outcome: failed ? '8' : '0',
          actor: request.actor, resources: request.resources, patients: request.patients,
          query: request.queries.length ? request.queries.join('\n') : undefined, requestId,
        });
      },
    };
  }

  /** Koa middleware for the FHIR mount: fail closed while the store fails, one record per request. */
  middleware(mount: string): Middleware {
    return async (ctx: Context, next: Next) => {
      const path = ctx.path;
      if (!path.startsWith(mount)) return next();
      const rest = trimSlashes(path.slice(mount.length));
      if (rest === 'metadata' || rest.startsWith('.well-known') || ctx.method === 'OPTIONS') return next();
      if (this.o.config.failClosed && !this.store.healthy) {
        throw errors.unavailable('The audit trail cannot be written at the moment, so no patient data is served; retry later');
      }
      const request = new RequestAudit(ctx.state.requestId as string | undefined, ctx.ip);
      let status = 500;
      (ctx.headers as { [REQUEST_AUDIT]?: RequestAudit })[REQUEST_AUDIT] = request;
      try {
        await next();
        status = ctx.status;
      } catch (err) {
        status = (err as { status?: number }).status ?? 500;
        throw err;
      } finally {
        let segments: string[];
        try {
          segments = !rest ? [] : rest.includes('%') ? rest.split('/').map((s) => decodeURIComponent(s)) : rest.split('/');
        } catch {
          segments = rest.split('/');
        }
        this.requestEnded(request, ctx.method, segments, (ctx.request as { body?: { type?: unknown } }).body?.type, status);
      }
    };
  }

  private requestEnded(request: RequestAudit, method: string, segments: string[], bundleType: unknown, status: number): void {
    const i = interactionOf(method, segments, bundleType);
    const failed = status >= 400;
    // A successful write is recorded with its version; a batch of writes only by them.
    if (!failed && (i.write || (!request.touched && (i.code === 'batch' || i.code === 'transaction')))) return;
    const denied = status === 401 || status === 403;
    const patients = request.patients;
    if (!failed && i.target?.startsWith('Patient/')) {
      const id = i.target.slice(8).split('/')[0]!;
      if (!patients.includes(id)) patients.push(id);
    }
    if (!failed && this.o.config.aggregateReads && (i.code === 'read' || i.code === 'vread') && !request.queries.length) {
      this.reads.add(i.code, request.actor, request.requestId, request.resources, patients);
      return;
    }
    this.record({
      type: codes.rest,
      subtype: i.operation ? codes.operation(i.operation) : codes.interaction(i.code),
      action: i.action,
      outcome: outcomeOf(status),
      outcomeDesc: failed ? (denied ? `Authorization failed (HTTP ${status})` : `HTTP ${status}`) : undefined,
      actor: request.actor,
      resources: [...(i.target ? [i.target] : []), ...request.resources],
      patients,
      query: request.queries.length ? request.queries.join('\n') : undefined,
      requestId: request.requestId,
    });
  }

  /** Sign-ins (success and failure) of the authorization server's account directory. */
  signIns(directory: AccountDirectory): AccountDirectory {
    return {
      findById: (id) => directory.findById(id),
      authenticate: async (email, password, ip) => {
        try {
          const info = await directory.authenticate(email, password, ip);
          this.record({ type: codes.userAuthentication, subtype: codes.login, action: 'E', outcome: '0', actor: { accountId: info.id, fhirUser: info.fhirUser, role: info.kind, ip } });
          return info;
        } catch (err) {
          const status = (err as { status?: number }).status ?? 500;
          this.record({
            type: codes.userAuthentication, subtype: codes.login, action: 'E', outcome: outcomeOf(status),
            outcomeDesc: status === 429 ? 'Sign-in refused: too many failures (locked out)' : status < 500 ? 'Sign-in failed: wrong e-mail or password' : `Sign-in failed (HTTP ${status})`,
            actor: { attemptedUser: typeof email === 'string' ? email.trim().slice(0, 200) : undefined, ip },
          });
          throw err;
        }
      },
    };
  }

  /** Token issuance, refusals and revocations of the authorization server (oidc-provider events). */
  watchAuthorizationServer(provider: { on(event: string, fn: (...args: any[]) => void): unknown }): void {
    const auth = (subtype: Parameters<typeof codes.token>[0], actor: Actor, outcome: '0' | '4', outcomeDesc?: string) =>
      this.record({ type: codes.userAuthentication, subtype: codes.token(subtype), action: 'E', outcome, outcomeDesc, actor });
    const ctxActor = (ctx: any): Actor => ({ clientId: ctx?.oidc?.client?.clientId, accountId: ctx?.oidc?.session?.accountId, ip: ctx?.ip });
    // Never the token itself (its jti is the opaque token): who, which client, which grant type and scopes.
    const issued = (t: any) => auth('token-issued', { clientId: t.clientId, accountId: t.accountId }, '0', `${String(t.gty ?? 'client_credentials')}; scope: ${String(t.scope ?? '')}`);
    provider.on('access_token.saved', issued);
    provider.on('client_credentials.saved', issued);
    provider.on('grant.error', (ctx: any, err: any) => auth('token-refused', ctxActor(ctx), '4', `${String(err?.error ?? 'error')}`));
    provider.on('authorization.error', (ctx: any, err: any) => auth('authorization-refused', ctxActor(ctx), '4', `${String(err?.error ?? 'error')}`));
    const revoked = (t: any) => auth('token-revoked', { clientId: t.clientId, accountId: t.accountId }, '0', `${String(t.kind ?? 'token')} revoked`);
    provider.on('access_token.destroyed', revoked);
    provider.on('client_credentials.destroyed', revoked);
    provider.on('refresh_token.destroyed', revoked);
    provider.on('grant.revoked', (ctx: any) => auth('token-revoked', ctxActor(ctx), '0', 'grant revoked'));
  }
}
