import { AsyncLocalStorage } from 'node:async_hooks';
import type { Actor } from './events.js';
import { patientsOf } from './patients.js';

/** What one HTTP request did, collected while it runs and written as its audit record when it ends. */
export class RequestAudit {
  actor: Actor;
  /** Resources touched, in order, possibly repeated (records name each once: see events.ts). */
  readonly resources: string[] = [];
  /** Ids of the patients whose data was touched, possibly repeated. */
  readonly patients: string[] = [];
  readonly queries: string[] = [];
  /** Whether the request reached patient data at all (a read, search or history call). */
  touched = false;

  constructor(
    readonly requestId: string | undefined,
    ip: string,
  ) {
    this.actor = { ip };
  }

  noteVersion(type: string, id: string, json: string | null, version?: string): void {
    this.touched = true;
    this.resources.push(version ? `${type}/${id}/_history/${version}` : `${type}/${id}`);
    if (type === 'Patient') this.patients.push(id);
    else for (const p of patientsOf(type, id, json)) this.patients.push(p);
  }

  noteQuery(query: string): void {
    this.touched = true;
    if (this.queries.length < 20) this.queries.push(query);
  }
}

/**
 * A unit the audited repository runs a write (or a transaction) in: the write-chain records its side writes
 * got, so that a failure can void them. Frames nest (writes inside a transaction).
 */
export interface AuditFrame {
  parent?: AuditFrame;
  /** The request the write serves (none for the server's own writes). */
  request?: RequestAudit;
  /** Write-chain records sealed in this frame: position, hash, record id and the version's resource. */
  seqs: { seq: number; hash: string; id: string; resource: string }[];
}

/** Entered only around writes, never on the read path (on Node 22 without AsyncContextFrame it slows every await). */
export const auditContext = new AsyncLocalStorage<AuditFrame>();

/** The request a frame (or the frames around it) serves. */
export function frameRequest(frame: AuditFrame | undefined): RequestAudit | undefined {
  for (let f = frame; f; f = f.parent) if (f.request) return f.request;
  return undefined;
}
