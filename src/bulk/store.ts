import type { Collection, Db } from 'mongodb';
import type { OperationOutcome } from '@medplum/fhirtypes';
import type { AccessContext } from '../auth/access-policy.js';
import { parseScopes } from '../auth/smart-scopes.js';

/** The caller of a kick-off as a job keeps it: the work runs later under the same access policy. */
export interface StoredAccess {
  clientId: string;
  accountId?: string;
  scopes: string[];
  granted?: string[];
  patient?: string;
  fhirUser?: string;
  role?: AccessContext['role'];
  organization?: string;
  payor?: string;
}

export function storeAccess(a: AccessContext): StoredAccess {
  const out: StoredAccess = { clientId: a.clientId, scopes: a.scopes.map((s) => s.text) };
  for (const k of ['accountId', 'granted', 'patient', 'fhirUser', 'role', 'organization', 'payor'] as const) if (a[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = a[k];
  return out;
}

export function loadAccess(s: StoredAccess): AccessContext {
  const { scopes, ...rest } = s;
  return { ...rest, scopes: parseScopes(scopes.join(' ')) };
}

/** One search a task runs (a `_typeFilter` query, or a patient's compartment), in order. */
export interface TaskQuery {
  /** Search criteria as a query string (FerretDB stores no nested arrays). */
  criteria: string;
  /** Compartment search in this patient's compartment (Patient and Group exports). */
  patient?: string;
  /** Index of the `_typeFilter` query (earlier ones take precedence, so an OR never writes a resource twice). */
  filter: number;
}

export interface OutputFile {
  name: string;
  type: string;
  count: number;
}

/** An export or import request: its manifest is built from it and its tasks. */
export interface BulkJobDoc {
  _id: string;
  kind: 'export' | 'import';
  clientId: string;
  access: StoredAccess;
  /** The kick-off request URL (the manifest's `request`). */
  request: string;
  transactionTime: Date;
  status: 'in-progress' | 'completed';
  taskCount: number;
  /** Kick-off warnings (lenient handling), written to the error file. */
  notes: OperationOutcome[];
  elements?: string[];
  createdAt: Date;
  completedAt?: Date;
  expiresAt?: Date;
  /** Error file written at completion. */
  errorFile?: OutputFile;
}

/** One resource type of an export (or one input of an import); the unit the job runner hands to a process. */
export interface BulkTaskDoc {
  _id: string;
  job: string;
  n: number;
  type: string;
  // export
  queries: TaskQuery[];
  /** Checkpoint: the query being read and the paging cursor where its next page starts. */
  q: number;
  cursor?: string;
  // import
  url?: string;
  /** Checkpoint: input lines done. */
  line: number;
  /** Checkpoint: next file part number, and the files written so far. */
  part: number;
  files: OutputFile[];
  errorFiles: OutputFile[];
  /** Resources written (export) or imported (import) so far, and how many there are in all (once known). */
  written: number;
  failed: number;
  total?: number;
  errors: OperationOutcome[];
  /** Slices run so far (each ends with a checkpoint), and the processes (BulkData.id) that wrote parts. */
  slices?: number;
  writers?: string[];
  /** Slices that failed in a row (server errors); the task gives up after a few. */
  failures?: number;
  done: boolean;
}

export class BulkStore {
  readonly jobs: Collection<BulkJobDoc>;
  readonly tasks: Collection<BulkTaskDoc>;
  constructor(db: Db) {
    this.jobs = db.collection<BulkJobDoc>('bulk_jobs');
    this.tasks = db.collection<BulkTaskDoc>('bulk_tasks');
  }

  async init(): Promise<void> {
    await this.tasks.createIndex({ job: 1, n: 1 }, { name: 'job' });
    await this.jobs.createIndex({ expiresAt: 1 }, { name: 'expires' });
  }

  tasksOf(job: string): Promise<BulkTaskDoc[]> {
    return this.tasks.find({ job }).sort({ n: 1 }).toArray();
  }
}

/** Thrown by a slice that finds its job gone (cancelled): the task ends without writing more. */
export class Stopped extends Error {}
