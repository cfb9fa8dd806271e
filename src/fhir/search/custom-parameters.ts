import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import type { SearchParameter, Task } from '@medplum/fhirtypes';
import type { Logger } from '../../infra/logger.js';
import type { Collections, CurrentDoc } from '../storage/mongo/documents.js';
import type { FhirRepository } from '../storage/repository.js';
import type { ResourceVersion } from '../storage/types.js';
import type { SearchParameterRegistry } from './parameters.js';
import type { Indexer } from './index-entry.js';

/** A back-fill of the search index after a SearchParameter changed; durable, so any process can resume it. */
export interface ReindexJob {
  _id: string;
  /** The SearchParameter that caused it (`SearchParameter/id`) and the Task reporting progress. */
  parameter: string;
  task: string;
  types: string[];
  /** Checkpoint: index into `types`; documents done are stamped with the job id (`ixj`). */
  typeIndex: number;
  lastId: string | null;
  processed: number;
  total: number;
  status: 'queued' | 'running' | 'completed' | 'failed';
  /** Not before (lets every process learn the new parameter before old documents are re-indexed). */
  notBefore: Date;
  leaseOwner: string | null;
  leaseUntil: Date;
  error?: string;
}

export interface CustomParameterOptions {
  /** How often a process re-reads SearchParameters and jobs written by other processes. */
  pollMs: number;
  /** Lease of a running job; another process takes it over when the holder stops renewing. */
  leaseMs: number;
  /** Documents re-indexed per step (one checkpoint each). */
  batchSize: number;
  /** Run reindex jobs in this process. */
  runJobs: boolean;
  /** Ids in `_id` order straight from the engine's storage, where that is cheaper than a sorted find (FerretDB on PostgreSQL). */
  idsAfter?: (collection: string, after: string | null, limit: number) => Promise<string[]>;
}

/**
 * Custom SearchParameters online: a SearchParameter written through the API is registered at once (new
 * writes are indexed with it), and a background job back-fills the existing resources of its base types
 * without blocking requests. The job checkpoints after every batch in MongoDB, so it resumes after a
 * restart in whichever process takes its lease, and reports progress as a FHIR Task.
 */
export class CustomSearchParameters {
  readonly jobs: Collection<ReindexJob>;
  private readonly owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private seenUpTo = new Date(0);

  constructor(
    db: Db,
    private readonly collections: Collections,
    private readonly registry: SearchParameterRegistry,
    private readonly indexer: Indexer,
    private readonly repo: () => FhirRepository,
    private readonly logger: Logger,
    private readonly opts: CustomParameterOptions,
  ) {
    this.jobs = db.collection<ReindexJob>('reindex_jobs');
  }

  /** Loads every stored SearchParameter and starts polling (and, if enabled, running jobs). */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.tick(), this.opts.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** Repository hook: a SearchParameter was created, updated or deleted. */
  onChange = async (version: ResourceVersion): Promise<void> => {
    const key = `SearchParameter/${version.id}`;
    if (!this.newer(version.id, Number(version.versionId))) return;
    if (version.deleted || !version.json) {
      this.registry.unregister(version.id);
      return;
    }
    const sp = JSON.parse(version.json) as SearchParameter;
    if (sp.status === 'retired') {
      this.registry.unregister(version.id);
      return;
    }
    const types = this.registry.register(sp);
    if (!types.length) return;
    const job = await this.enqueue(types, `search parameter '${sp.code}'`, key, this.opts.pollMs + 500);
    this.logger.info({ parameter: key, code: sp.code, types: types.length, task: job.task }, 'search parameter registered; reindex queued');
  };

  /**
   * Queues a back-fill of `types` with a Task reporting it. `delayMs` gives every process time to learn a
   * new parameter before old documents are re-indexed (a write meanwhile indexes with it anyway).
   */
  async enqueue(types: string[], reason: string, parameter?: string, delayMs = 0): Promise<ReindexJob> {
    const task: Task = {
      resourceType: 'Task',
      status: 'requested',
      intent: 'order',
      code: { coding: [{ system: 'http://medivoy.example/task', code: 'reindex', display: 'Re-index resources for search' }] },
      ...(parameter ? { focus: { reference: parameter } } : {}),
      description: `Back-fill the search index of ${types.length > 5 ? `${types.length} resource types` : types.join(', ')} for ${reason}`,
      authoredOn: new Date().toISOString(),
      input: types.map((t) => ({ type: { text: 'resourceType' }, valueCode: t })),
    };
    const created = await this.repo().create(task);
    const job: ReindexJob = {
      _id: randomUUID(), parameter: parameter ?? '', task: `Task/${created.version.id}`, types, typeIndex: 0, lastId: null, processed: 0, total: 0,
      status: 'queued', notBefore: new Date(Date.now() + delayMs), leaseOwner: null, leaseUntil: new Date(0),
    };
    await this.jobs.insertOne(job);
    return job;
  }

  /** Picks up SearchParameters other processes wrote since the last look. */
  async refresh(): Promise<void> {
    const col = this.collections.current('SearchParameter');
    const docs = await col.find({ lu: { $gte: this.seenUpTo } }, { projection: { id: 1, v: 1, json: 1, lu: 1, del: 1 } }).toArray();
    for (const d of docs) {
      if (d.lu > this.seenUpTo) this.seenUpTo = d.lu;
      // Only a version newer than the one applied (a poll can read a version this process already replaced).
      if (!this.newer(d.id, d.v)) continue;
      if (d.del || !d.json) this.registry.unregister(d.id);
      else {
        const sp = JSON.parse(d.json) as SearchParameter;
        if (sp.status === 'retired') this.registry.unregister(d.id);
        else if (!this.registry.customParameters().some((c) => c.id === sp.id && c.meta?.versionId === sp.meta?.versionId)) this.registry.register(sp);
      }
    }
  }

  private readonly applied = new Map<string, number>();

  /** Records that version `v` of a SearchParameter is being applied; false if a newer one already was. */
  private newer(id: string, v: number): boolean {
    if ((this.applied.get(id) ?? 0) >= v) return false;
    this.applied.set(id, v);
    return true;
  }

  private async tick(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = (async () => {
      try {
        await this.refresh();
        if (this.opts.runJobs) await this.runOne();
      } catch (err) {
        this.logger.warn({ err }, 'search parameter refresh or reindex step failed; will retry');
      } finally {
        this.running = undefined;
      }
    })();
    await this.running;
  }

  /** Takes one due job's lease and works it to the end (renewing the lease at each checkpoint). */
  async runOne(onProgress?: (job: ReindexJob) => void): Promise<ReindexJob | undefined> {
    const now = new Date();
    const job = await this.jobs.findOneAndUpdate(
      { status: { $in: ['queued', 'running'] }, notBefore: { $lte: now }, leaseUntil: { $lt: now } },
      { $set: { leaseOwner: this.owner, leaseUntil: new Date(Date.now() + this.opts.leaseMs), status: 'running' } },
      { returnDocument: 'after', sort: { notBefore: 1 } },
    );
    if (!job) return undefined;
    return this.work(job, onProgress);
  }

  private async work(job: ReindexJob, onProgress?: (job: ReindexJob) => void): Promise<ReindexJob> {
    await this.setTask(job, 'in-progress');
    try {
      if (job.total === 0) {
        job.total = (await Promise.all(job.types.map((t) => this.collections.approximateCount(t)))).reduce((a, b) => a + b, 0);
      }
      let lastTaskUpdate = Date.now();
      while (job.typeIndex < job.types.length && !this.stopped) {
        const type = job.types[job.typeIndex]!;
        const col = this.collections.current(type);
        if (this.opts.idsAfter) {
          // Keyset pages of ids (checkpoint: the last id), each document read and updated by its `_id`.
          const ids = await this.opts.idsAfter(this.collections.currentName(type), job.lastId, this.opts.batchSize);
          await runLimited(ids, 16, async (id) => {
            const d = await col.findOne({ _id: id }, { projection: { _id: 1, v: 1, json: 1, del: 1 } });
            if (!d || d.del || !d.json) return;
            await col.updateOne({ _id: d._id, v: d.v }, { $set: this.indexer(JSON.parse(d.json) as Record<string, unknown>), $unset: { ix: '' } });
          });
          job.processed += ids.length;
          if (ids.length < this.opts.batchSize) {
            job.typeIndex++;
            job.lastId = null;
          } else job.lastId = ids[ids.length - 1]!;
          if (!(await this.checkpoint(job))) return job;
          onProgress?.(job);
          if (Date.now() - lastTaskUpdate > 2000) {
            await this.setTask(job, 'in-progress');
            lastTaskUpdate = Date.now();
          }
          continue;
        }
        // One streaming pass over the documents this job has not stamped yet. No sort: FerretDB 1.x sorts in
        // memory after reading the whole table, which made sorted paging quadratic; the stamp (`ixj`, a
        // `$nin`, which unlike a pushed-down `$ne` also matches documents without the field) lets a restarted
        // job resume where it stopped.
        const cursor = col.find({ ixj: { $nin: [job._id] } } as never, { projection: { _id: 1, v: 1, json: 1, del: 1 } }).batchSize(this.opts.batchSize);
        let batch = 0;
        let lostLease = false;
        for await (const d of cursor as AsyncIterable<CurrentDoc>) {
          if (this.stopped) break;
          // Only this version: a newer one written meanwhile was indexed with the new parameter already.
          const update = d.del || !d.json
            ? { $set: { ixj: job._id } }
            : { $set: { ...this.indexer(JSON.parse(d.json) as Record<string, unknown>), ixj: job._id }, $unset: { ix: '' } };
          await col.updateOne({ _id: d._id, v: d.v }, update as never);
          job.processed++;
          if (++batch < this.opts.batchSize) continue;
          batch = 0;
          if (!(await this.checkpoint(job))) {
            lostLease = true;
            break;
          }
          onProgress?.(job);
          if (Date.now() - lastTaskUpdate > 2000) {
            await this.setTask(job, 'in-progress');
            lastTaskUpdate = Date.now();
          }
        }
        await cursor.close();
        if (lostLease) return job; // the lease was taken over: the other process goes on
        if (this.stopped) break;
        job.typeIndex++;
        if (!(await this.checkpoint(job))) return job;
        onProgress?.(job);
      }
      if (job.typeIndex >= job.types.length) {
        job.status = 'completed';
        await this.jobs.updateOne({ _id: job._id }, { $set: { status: 'completed', leaseUntil: new Date(0), processed: job.processed } });
        await this.setTask(job, 'completed');
      } else {
        await this.jobs.updateOne({ _id: job._id, leaseOwner: this.owner }, { $set: { leaseUntil: new Date(0) } }); // stopping: hand it over
      }
    } catch (err) {
      job.status = 'failed';
      job.error = err instanceof Error ? err.message : String(err);
      await this.jobs.updateOne({ _id: job._id }, { $set: { status: 'failed', error: job.error } });
      await this.setTask(job, 'failed').catch(() => undefined);
      throw err;
    }
    return job;
  }

  /** Saves progress and renews the lease; false when another process has taken the job over. */
  private async checkpoint(job: ReindexJob): Promise<boolean> {
    const renewed = await this.jobs.updateOne(
      { _id: job._id, leaseOwner: this.owner },
      { $set: { typeIndex: job.typeIndex, lastId: job.lastId, processed: job.processed, total: job.total, leaseUntil: new Date(Date.now() + this.opts.leaseMs) } },
    );
    return renewed.matchedCount === 1;
  }

  private async setTask(job: ReindexJob, status: Task['status']): Promise<void> {
    const [, id] = job.task.split('/');
    const current = JSON.parse((await this.repo().read('Task', id!)).json!) as Task;
    const next: Task = {
      ...current,
      status,
      lastModified: new Date().toISOString(),
      ...(job.error ? { statusReason: { text: job.error } } : {}),
      output: [
        { type: { text: 'processed' }, valueInteger: job.processed },
        { type: { text: 'total' }, valueInteger: job.total },
      ],
    };
    await this.repo().update(next);
  }

  /** Whether a parameter's back-fill is still running (searches on it say their answer may be incomplete). */
  async pendingFor(types: string[]): Promise<ReindexJob[]> {
    return this.jobs.find({ status: { $in: ['queued', 'running'] } }).toArray().then((jobs) => jobs.filter((j) => j.types.some((t) => types.includes(t))));
  }
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function runLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}
