import { randomUUID } from 'node:crypto';
import type { Db } from 'mongodb';
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { AccessContext } from '../auth/access-policy.js';
import { errors, isOperationOutcomeError, issue } from '../fhir/outcomes.js';
import type { OperationContext, OperationInput, OperationResult } from '../fhir/operations/registry.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { Logger } from '../infra/logger.js';
import type { JobDefinition, JobQueue } from '../jobs/job-queue.js';
import { createFileStore, type FileStore } from './file-store.js';
import { planExport, type ExportLevel } from './export-request.js';
import { planImport, runImportSlice } from './import-task.js';
import { BulkStore, Stopped, loadAccess, storeAccess, type BulkJobDoc, type BulkTaskDoc, type OutputFile, type TaskQuery } from './store.js';

export interface BulkConfig {
  /** Where files go: GridFS in the database (default) or a local directory. */
  fileStore: 'gridfs' | 'directory';
  fileDir?: string;
  /** Most resources in one NDJSON file; a type with more is split into parts. */
  maxResourcesPerFile: number;
  /** How long finished files (and the status URL) stay available. */
  expiryMs: number;
  /** How long one task runs before it hands its checkpoint back to the job queue (processes share the work). */
  sliceMs: number;
  /** Suggested polling interval (Retry-After on 202). */
  retryAfterSeconds: number;
  /** Kick-offs a client may have in progress at once (429 beyond). */
  maxActivePerClient: number;
  /** `$import`: `file:` URLs must lie under this directory (none: file URLs refused). */
  importDir?: string;
  /** `$import`: origins (`https://host:port`) the server may fetch inputs from. */
  importOrigins: string[];
  /** How often expired exports are removed. */
  sweepMs: number;
}

export interface BulkDeps {
  db: Db;
  config: BulkConfig;
  logger: Logger;
  /** The caller's repository (access policy, write rules) for a stored caller. */
  repositoryFor: (access: AccessContext) => FhirRepository;
  /**
   * Wraps a slice's repository so that what it reaches is recorded (the audit trail), `done` once the slice
   * ends; absent without an audit trail.
   */
  auditSlice?: (repo: FhirRepository, access: AccessContext, operation: 'export' | 'import', requestId: string) => { repo: FhirRepository; done(failed: boolean): void };
  /** The caller of a request from its Authorization header (401 when there is none or it is not valid). */
  accessContext: (authorization: string | undefined) => Promise<AccessContext>;
  /** The FHIR base URL, e.g. https://host/fhir. */
  baseUrl: () => string;
}

export const BULK_TASK_JOB = 'bulk-task';
export const BULK_FINALIZE_JOB = 'bulk-finalize';
export const BULK_EXPIRE_JOB = 'bulk-expire';
/** The routes of the status and file endpoints, under the FHIR mount. */
export const STATUS_PATH = '_bulk/status';
export const FILES_PATH = '_bulk/files';

const PAGE = 500;
const MAX_TASK_FAILURES = 5;


/**
 * Bulk Data $export and $import (Bulk Data Access IG 2.0): kick-offs plan the work into tasks (one per
 * resource type, or per import input) that run on the durable job queue in any process, each in slices
 * that end with a checkpoint (query, paging cursor, file part), so a restart or another process resumes
 * exactly there. Files go to a FileStore; the status and file endpoints check the caller's client.
 */
export class BulkData {
  readonly store: BulkStore;
  readonly files: FileStore;
  /** Set by the composition root once the job runner exists. */
  jobs?: JobQueue;
  /** This process's name in the tasks' `writers` (which processes wrote parts of a task). */
  readonly id = randomUUID();
  private stopping = false;
  private readonly running = new Set<Promise<unknown>>();

  constructor(readonly deps: BulkDeps) {
    this.store = new BulkStore(deps.db);
    this.files = createFileStore(deps.config.fileStore, deps.db, deps.config.fileDir);
  }

  async init(): Promise<void> {
    await this.store.init();
  }

  /** Running slices checkpoint and give their task back to the queue (another process or a restart resumes it). */
  stop(): void {
    this.stopping = true;
  }

  jobDefinitions(): JobDefinition[] {
    const track = <T>(p: Promise<T>) => {
      this.running.add(p);
      return p.finally(() => this.running.delete(p));
    };
    return [
      { name: BULK_TASK_JOB, maxRetries: 20, retryDelayMs: 500, handler: (d) => track(this.runTask(String(d.task))) },
      { name: BULK_FINALIZE_JOB, maxRetries: 10, retryDelayMs: 500, handler: (d) => track(this.finalize(String(d.job))) },
      { name: BULK_EXPIRE_JOB, everyMs: this.deps.config.sweepMs, maxRetries: 2, handler: async () => void (await this.sweep()) },
    ];
  }

  private queue(): JobQueue {
    if (!this.jobs) throw new Error('bulk data: the job queue is not set');
    return this.jobs;
  }

  statusUrl(id: string): string {
    return `${this.deps.baseUrl()}/${STATUS_PATH}/${id}`;
  }

  fileUrl(name: string): string {
    return `${this.deps.baseUrl()}/${FILES_PATH}/${name}`;
  }

  // ------------------------------------------------------------------ kick-off

  private async admit(access: AccessContext | undefined): Promise<AccessContext> {
    if (!access) throw errors.unauthorized('A bulk request needs an access token');
    const active = await this.store.jobs.countDocuments({ clientId: access.clientId, status: 'in-progress' });
    if (active >= this.deps.config.maxActivePerClient) {
      throw errors.tooManyRequests(`This client has ${active} bulk requests in progress; wait for one to finish or cancel it`, this.deps.config.retryAfterSeconds * 4);
    }
    return access;
  }

  async kickOffExport(level: ExportLevel, input: OperationInput, ctx: OperationContext): Promise<OperationResult> {
    const plan = await planExport(level, input, ctx);
    const access = await this.admit(ctx.access);
    const id = randomUUID();
    const job: BulkJobDoc = {
      _id: id, kind: 'export', clientId: access.clientId, access: storeAccess(access), request: plan.request, transactionTime: plan.transactionTime,
      status: 'in-progress', taskCount: plan.types.length, notes: plan.notes, elements: plan.elements, createdAt: new Date(),
    };
    const tasks = plan.types.map((t, n) => newTask(id, n, t.type, { queries: t.queries }));
    await this.start(job, tasks);
    return this.accepted(id);
  }

  async kickOffImport(input: OperationInput, ctx: OperationContext): Promise<OperationResult> {
    const plan = await planImport(input, ctx, this.deps.config);
    const access = await this.admit(ctx.access);
    const id = randomUUID();
    const job: BulkJobDoc = {
      _id: id, kind: 'import', clientId: access.clientId, access: storeAccess(access), request: `${ctx.baseUrl}/$import`, transactionTime: new Date(),
      status: 'in-progress', taskCount: plan.inputs.length, notes: plan.notes, createdAt: new Date(),
    };
    const tasks = plan.inputs.map((i, n) => newTask(id, n, i.type, { url: i.url }));
    await this.start(job, tasks);
    return this.accepted(id);
  }

  private async start(job: BulkJobDoc, tasks: BulkTaskDoc[]): Promise<void> {
    if (tasks.length) await this.store.tasks.insertMany(tasks);
    await this.store.jobs.insertOne(job);
    for (const t of tasks) await this.queue().scheduleUnique(BULK_TASK_JOB, `bulk:${t._id}`, new Date(), { task: t._id, job: job._id });
    if (!tasks.length) await this.queue().scheduleUnique(BULK_FINALIZE_JOB, `bulk-finalize:${job._id}`, new Date(), { job: job._id });
  }

  private accepted(id: string): OperationResult {
    return {
      status: 202,
      headers: { 'Content-Location': this.statusUrl(id) },
      resource: { resourceType: 'OperationOutcome', issue: [issue('information', 'informational', `Accepted; poll ${this.statusUrl(id)} for the result`)] },
    };
  }

  // ------------------------------------------------------------------ tasks

  private async runTask(taskId: string): Promise<void> {
    const task = await this.store.tasks.findOne({ _id: taskId });
    if (!task || task.done) return;
    const job = await this.store.jobs.findOne({ _id: task.job });
    if (!job) return; // cancelled
    const access = loadAccess(job.access);
    const audited = this.deps.auditSlice?.(this.deps.repositoryFor(access), access, job.kind, job._id);
    const repo = audited?.repo ?? this.deps.repositoryFor(access);
    let sliceFailed = true;
    const deadline = Date.now() + this.deps.config.sliceMs;
    const more = () => !this.stopping && Date.now() < deadline;
    let finished = false;
    this.deps.logger.debug({ task: taskId, type: task.type, q: task.q, part: task.part }, 'bulk task slice');
    await this.store.tasks.updateOne({ _id: taskId }, { $inc: { slices: 1 } });
    try {
      finished = job.kind === 'export' ? await this.exportSlice(job, task, repo, more) : await runImportSlice(this, job, task, repo, more);
      sliceFailed = false;
    } catch (err) {
      if (err instanceof Stopped) return;
      // A failure of the data, not of the machine: recorded for the error file, and the task ends.
      if (isOperationOutcomeError(err) && err.status < 500) {
        await this.store.tasks.updateOne({ _id: taskId }, { $set: { done: true }, $push: { errors: withContext(err.outcome, `${task.type}: `) } });
        finished = true;
      } else if ((task.failures ?? 0) + 1 >= MAX_TASK_FAILURES) {
        // The job queue retries a failing slice; after a few failures in a row the type ends with an error entry
        // instead of leaving the whole request in progress for ever.
        this.deps.logger.error({ err, job: job._id, task: taskId, type: task.type }, 'bulk task failed for good');
        const outcome: OperationOutcome = { resourceType: 'OperationOutcome', issue: [{ ...issue('error', 'exception', `${task.type}: the ${job.kind} of this type failed after ${MAX_TASK_FAILURES} attempts; what was written before is in the output`), diagnostics: `${task.type}: failed` }] };
        await this.store.tasks.updateOne({ _id: taskId }, { $set: { done: true }, $push: { errors: outcome } });
        finished = true;
      } else {
        await this.store.tasks.updateOne({ _id: taskId }, { $inc: { failures: 1 } });
        throw err;
      }
    } finally {
      audited?.done(sliceFailed); // what the slice reached is recorded even when it failed half-way
    }
    if (task.failures && !finished) await this.store.tasks.updateOne({ _id: taskId }, { $set: { failures: 0 } });
    if (finished) await this.queue().scheduleUnique(BULK_FINALIZE_JOB, `bulk-finalize:${job._id}`, new Date(), { job: job._id });
    else await this.queue().scheduleUnique(BULK_TASK_JOB, `bulk:${taskId}`, new Date(), { task: taskId, job: job._id });
  }

  /** Writes one part after another until the slice ends; resolves true when the type is complete. */
  private async exportSlice(job: BulkJobDoc, task: BulkTaskDoc, repo: FhirRepository, more: () => boolean): Promise<boolean> {
    const perFile = this.deps.config.maxResourcesPerFile;
    if (task.total === undefined) {
      let total = 0;
      for (const query of task.queries) total += (await this.search(repo, task.type, query, undefined, 0)).total ?? 0;
      task.total = total;
      await this.store.tasks.updateOne({ _id: task._id }, { $set: { total } });
    }
    while (task.q < task.queries.length) {
      if (!more()) return false;
      const lines: string[] = [];
      let { q, cursor } = task;
      while (lines.length < perFile && q < task.queries.length) {
        const query = task.queries[q]!;
        let res;
        try {
          res = await this.search(repo, task.type, query, cursor, Math.min(PAGE, perFile - lines.length));
        } catch (err) {
          if (isOperationOutcomeError(err) && err.status === 410) {
            // The paging link outlived its lifetime (a task resumed much later): this type starts over.
            this.deps.logger.warn({ job: job._id, type: task.type }, 'bulk export: paging cursor expired; restarting the type');
            await this.resetTask(task);
            return false;
          }
          throw err;
        }
        let docs = res.matches.filter((d) => d.json);
        if (query.filter > 0 && docs.length) docs = await this.notInEarlierFilters(repo, task, query, docs);
        for (const d of docs) lines.push(job.elements ? JSON.stringify(subset(JSON.parse(d.json!) as Resource, job.elements)) : d.json!);
        if (res.next) cursor = res.next;
        else {
          q++;
          cursor = undefined;
        }
      }
      const set: Partial<BulkTaskDoc> = { q, cursor: cursor ?? undefined, done: q >= task.queries.length };
      if (lines.length) {
        const file: OutputFile = { name: `${job._id}/${task.type}-${task.n}-${task.part}.ndjson`, type: task.type, count: lines.length };
        await this.files.write(file.name, Buffer.from(`${lines.join('\n')}\n`));
        if (!(await this.store.jobs.findOne({ _id: job._id }, { projection: { _id: 1 } }))) {
          await this.files.remove(file.name); // cancelled while this part was written
          throw new Stopped();
        }
        Object.assign(set, { part: task.part + 1, files: [...task.files, file], written: task.written + lines.length });
      }
      await this.store.tasks.updateOne({ _id: task._id }, { $set: { ...set, cursor: set.cursor ?? null } as never, ...(lines.length ? { $addToSet: { writers: this.id } } : {}) });
      Object.assign(task, set);
    }
    return true;
  }

  private search(repo: FhirRepository, type: string, query: TaskQuery, cursor: string | undefined, count: number) {
    const params: [string, string][] = [...new URLSearchParams(query.criteria), ['_sort', '_id'], ['_count', String(count)], ['_total', count === 0 ? 'accurate' : 'none']];
    if (cursor) params.push(['_cursor', cursor]);
    return repo.search({ types: [type], params, strict: true, baseUrl: this.deps.baseUrl(), compartment: query.patient ? { type: 'Patient', id: query.patient } : undefined });
  }

  /** `_typeFilter` queries are OR-ed: a resource an earlier query of the type matched was written already. */
  private async notInEarlierFilters<T extends { id: string }>(repo: FhirRepository, task: BulkTaskDoc, query: TaskQuery, docs: T[]): Promise<T[]> {
    const earlier = task.queries.filter((x) => x.patient === query.patient && x.filter < query.filter);
    const seen = new Set<string>();
    for (const e of earlier) {
      const criteria = new URLSearchParams([['_id', docs.map((d) => d.id).join(',')], ...new URLSearchParams(e.criteria)]).toString();
      for (const m of await repo.findByCriteria(task.type, criteria, docs.length)) seen.add(m.id);
    }
    return docs.filter((d) => !seen.has(d.id));
  }

  private async resetTask(task: BulkTaskDoc): Promise<void> {
    for (const f of task.files) await this.files.remove(f.name);
    const reset = { q: 0, cursor: null, part: 0, files: [], written: 0 };
    await this.store.tasks.updateOne({ _id: task._id }, { $set: reset as never });
    Object.assign(task, reset, { cursor: undefined });
  }

  /** When every task is done: writes the error file and completes the job (idempotent: a second run rewrites the same). */
  private async finalize(id: string): Promise<void> {
    const job = await this.store.jobs.findOne({ _id: id });
    if (!job || job.status === 'completed') return;
    const tasks = await this.store.tasksOf(id);
    if (tasks.length < job.taskCount || tasks.some((t) => !t.done)) return;
    const outcomes = [...job.notes, ...tasks.flatMap((t) => t.errors)];
    let errorFile: OutputFile | undefined;
    if (outcomes.length) {
      errorFile = { name: `${id}/errors.ndjson`, type: 'OperationOutcome', count: outcomes.length };
      await this.files.write(errorFile.name, Buffer.from(`${outcomes.map((o) => JSON.stringify(o)).join('\n')}\n`));
    }
    const now = new Date();
    await this.store.jobs.updateOne({ _id: id }, { $set: { status: 'completed', completedAt: now, expiresAt: new Date(now.getTime() + this.deps.config.expiryMs), ...(errorFile ? { errorFile } : {}) } });
  }

  /** Removes expired jobs with their files. */
  async sweep(): Promise<number> {
    const expired = await this.store.jobs.find({ expiresAt: { $lt: new Date() } }, { projection: { _id: 1 } }).toArray();
    for (const j of expired) await this.remove(j._id);
    return expired.length;
  }

  async remove(id: string): Promise<void> {
    await this.store.jobs.deleteOne({ _id: id });
    await this.queue().cancel(BULK_TASK_JOB, { job: id });
    await this.queue().cancel(BULK_FINALIZE_JOB, { job: id });
    await this.store.tasks.deleteMany({ job: id });
    await this.files.removeJob(id);
  }

  /** Waits for running slices (they stop at their next checkpoint once stop() was called). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  // ------------------------------------------------------------------ status

  /** The job for a status or file request: 404 when unknown or expired, 403 for another client's. */
  async jobFor(id: string, access: AccessContext): Promise<BulkJobDoc> {
    const job = /^[0-9a-f-]{36}$/.test(id) ? await this.store.jobs.findOne({ _id: id }) : null;
    if (!job || (job.expiresAt && job.expiresAt < new Date())) throw errors.notFound(`There is no bulk request ${id} (it may have been cancelled or expired)`);
    if (job.clientId !== access.clientId) throw errors.forbidden('This bulk request belongs to another client');
    return job;
  }

  async progress(job: BulkJobDoc): Promise<string> {
    const tasks = await this.store.tasksOf(job._id);
    const done = tasks.filter((t) => t.done).length;
    const written = tasks.reduce((n, t) => n + t.written + (t.failed ?? 0), 0);
    const total = tasks.every((t) => t.total !== undefined) ? tasks.reduce((n, t) => n + (t.total ?? 0), 0) : undefined;
    const pct = total ? Math.min(99, Math.floor((written / total) * 100)) : Math.floor((done / Math.max(1, tasks.length)) * 100);
    return `${pct}% (${written}${total !== undefined ? ` of ${total}` : ''} resources, ${done} of ${tasks.length} ${job.kind === 'export' ? 'types' : 'inputs'} done)`.slice(0, 99);
  }

  async manifest(job: BulkJobDoc): Promise<Record<string, unknown>> {
    const tasks = await this.store.tasksOf(job._id);
    const errorFiles = [...(job.errorFile ? [job.errorFile] : []), ...tasks.flatMap((t) => t.errorFiles)];
    const error = errorFiles.map((f) => ({ type: 'OperationOutcome', url: this.fileUrl(f.name), count: f.count }));
    const output = job.kind === 'export'
      ? tasks.flatMap((t) => t.files.map((f) => ({ type: f.type, url: this.fileUrl(f.name), count: f.count })))
      : tasks.map((t) => ({ type: t.type, inputUrl: t.url, count: t.written }));
    return { transactionTime: job.transactionTime.toISOString(), request: job.request, requiresAccessToken: true, output, error };
  }

  /** Whether a file belongs to a job's manifest. */
  async hasFile(job: BulkJobDoc, name: string): Promise<boolean> {
    if (job.errorFile?.name === name) return true;
    const tasks = await this.store.tasksOf(job._id);
    return tasks.some((t) => t.files.some((f) => f.name === name) || t.errorFiles.some((f) => f.name === name));
  }
}

function newTask(job: string, n: number, type: string, extra: Partial<BulkTaskDoc>): BulkTaskDoc {
  return { _id: `${job}.${n}`, job, n, type, queries: [], q: 0, line: 0, part: 0, files: [], errorFiles: [], written: 0, failed: 0, errors: [], done: false, ...extra };
}

function withContext(o: OperationOutcome, prefix: string): OperationOutcome {
  return { ...o, issue: o.issue?.map((i) => ({ ...i, diagnostics: `${prefix}${i.diagnostics ?? i.details?.text ?? ''}` })) };
}

/** `_elements`: the listed elements (plain or `Type.element`) plus the mandatory ones, marked SUBSETTED (R4 3.1.1.5.9). */
export function subset(r: Resource, elements: string[]): Resource {
  const mine = elements.filter((e) => !e.includes('.') || e.startsWith(`${r.resourceType}.`)).map((e) => e.replace(/^[A-Z][A-Za-z]+\./, ''));
  if (!mine.length) return r;
  const keep = new Set(['resourceType', 'id', 'meta', ...mine]);
  const out = Object.fromEntries(Object.entries(r).filter(([k]) => keep.has(k) || [...keep].some((e) => e.endsWith('[x]') && k.startsWith(e.slice(0, -3))))) as Resource;
  const meta = { ...(out.meta ?? {}) };
  meta.tag = [...(meta.tag ?? []), { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED', display: 'subsetted' }];
  return { ...out, meta } as Resource;
}

