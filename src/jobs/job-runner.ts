import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import type { Logger } from '../infra/logger.js';
import type { JobData, JobDefinition, JobQueue } from './job-queue.js';
import { jobRuns, jobsDue, jobsFailed, oldestDueJobAge, onScrape } from '../infra/metrics.js';

/**
 * Why not agenda: agenda locks a due job with findOneAndUpdate({lockedAt: null, …}). On FerretDB 1.24 that
 * is not atomic when several documents match: 16 concurrent claimers over 30 due jobs made 132 claims
 * (updateOne with the same filter: 114-143), i.e. FerretDB picks a row and updates it without re-checking
 * the filter. With two servers agenda ran 12 reminder jobs 29 times. What FerretDB does settle atomically is
 * a unique key on insert, so this runner claims each run of a job by inserting `job_claims/{job}#{generation}#{attempt}`:
 * exactly one process wins it. A claim is a lease: a process that died mid-run is superseded after
 * `lockLifetimeMs` by a claim on the next attempt (again one winner).
 */
interface JobDoc {
  /** The job key (unique by construction). */
  _id: string;
  name: string;
  data: JobData;
  runAt: Date;
  /** Changes on every (re)schedule, so a claim on an older schedule never covers the new one. */
  generation: string;
  attempt: number;
  status: 'scheduled' | 'failed';
  lastError?: string;
}
interface ClaimDoc {
  _id: string;
  owner: string;
  exp: Date;
}

export interface JobsOptions {
  db: Db;
  logger: Logger;
  /** Run due jobs in this process (any number of processes may; scheduling works either way). */
  enabled: boolean;
  pollMs: number;
  /** A claim older than this is presumed abandoned (its process died) and the job is run again. */
  lockLifetimeMs: number;
  definitions: JobDefinition[];
}

export interface Jobs extends JobQueue {
  /** How many runs of `name` this process has finished (successfully or not); tests sum it across processes. */
  runs(name: string): number;
  close(timeoutMs: number): Promise<void>;
}

const isDuplicateKey = (err: unknown) => (err as { code?: number }).code === 11000;

export async function initJobs(opts: JobsOptions): Promise<Jobs> {
  const jobs: Collection<JobDoc> = opts.db.collection<JobDoc>('jobs');
  const claims: Collection<ClaimDoc> = opts.db.collection<ClaimDoc>('job_claims');
  await jobs.createIndex({ status: 1, runAt: 1 }, { name: 'due' });
  const owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const defs = new Map(opts.definitions.map((d) => [d.name, d]));
  const runs = new Map<string, number>();
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<void> | undefined;

  const scheduleUnique = async (name: string, key: string, runAt: Date, data: JobData) => {
    const doc: JobDoc = { _id: key, name, data: { ...data, key }, runAt, generation: randomUUID(), attempt: 0, status: 'scheduled' };
    try {
      await jobs.insertOne(doc);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      const { _id, ...rest } = doc;
      await jobs.replaceOne({ _id }, rest); // rescheduling a key moves its job (new generation: old claims do not cover it)
    }
  };

  /** Claims one run; false when another process has it (or had it, and its lease has not expired). */
  const claim = async (job: JobDoc): Promise<boolean> => {
    const id = (attempt: number) => `${job._id}#${job.generation}#${attempt}`;
    try {
      await claims.insertOne({ _id: id(job.attempt), owner, exp: new Date(Date.now() + opts.lockLifetimeMs) });
      return true;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    const held = await claims.findOne({ _id: id(job.attempt) });
    if (!held || held.exp > new Date()) return false;
    // The holder died: take over on the next attempt number (a unique insert again, so one process does).
    try {
      await claims.insertOne({ _id: id(job.attempt + 1), owner, exp: new Date(Date.now() + opts.lockLifetimeMs) });
      job.attempt += 1;
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  };

  const run = async (job: JobDoc, def: JobDefinition) => {
    try {
      await def.handler(job.data);
      if (def.everyMs) await jobs.updateOne({ _id: job._id, generation: job.generation }, { $set: { runAt: new Date(Date.now() + def.everyMs), generation: randomUUID(), attempt: 0 } });
      else await jobs.deleteOne({ _id: job._id, generation: job.generation });
      jobRuns.inc({ job: def.name, outcome: 'success' });
    } catch (err) {
      const retries = def.maxRetries ?? 5;
      const failed = job.attempt >= retries;
      jobRuns.inc({ job: def.name, outcome: failed ? 'failed' : 'retry' });
      // Exponential back-off with jitter: retryDelay · 2^attempt · [0.8, 1.2).
      const delay = (def.retryDelayMs ?? 5_000) * 2 ** job.attempt * (0.8 + Math.random() * 0.4);
      opts.logger[failed ? 'error' : 'warn']({ err, job: def.name, key: job._id, attempt: job.attempt + 1, retryInMs: failed ? undefined : Math.round(delay) }, failed ? 'job failed for good' : 'job failed; retrying');
      await jobs.updateOne(
        { _id: job._id, generation: job.generation },
        { $set: failed && !def.everyMs ? { status: 'failed', lastError: String((err as Error).message) } : { attempt: failed ? 0 : job.attempt + 1, runAt: new Date(Date.now() + (failed ? def.everyMs! : delay)), lastError: String((err as Error).message) } },
      );
    } finally {
      runs.set(def.name, (runs.get(def.name) ?? 0) + 1);
    }
  };

  let lastSweep = Date.now();
  const poll = async () => {
    if (Date.now() - lastSweep > opts.lockLifetimeMs) {
      // A claim is kept well past its lease so that a process acting on a stale read of a finished job
      // still finds it taken; after that it only takes space.
      lastSweep = Date.now();
      await claims.deleteMany({ exp: { $lt: new Date(Date.now() - opts.lockLifetimeMs) } });
    }
    const due = await jobs.find({ status: 'scheduled', runAt: { $lte: new Date() }, name: { $in: [...defs.keys()] } }).sort({ runAt: 1 }).limit(50).toArray();
    for (const job of due) {
      if (stopped) return;
      const def = defs.get(job.name)!;
      if (!(await claim(job))) continue;
      const p = run(job, def);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
  };
  const tick = () => {
    if (polling || stopped) return;
    polling = poll()
      .catch((err) => opts.logger.error({ err }, 'job poll failed; will retry'))
      .finally(() => (polling = undefined));
  };

  for (const def of opts.definitions.filter((d) => d.everyMs)) {
    const key = `every:${def.name}`;
    await jobs.insertOne({ _id: key, name: def.name, data: { key }, runAt: new Date(), generation: randomUUID(), attempt: 0, status: 'scheduled' }).catch((err) => {
      if (!isDuplicateKey(err)) throw err; // registered by another process or an earlier start
    });
  }
  // Queue depth, the oldest due job's wait and the given-up jobs, per type, read when /metrics is scraped.
  const stopMetrics = onScrape(async () => {
    const now = new Date();
    // FerretDB 1.24 has $group with $sum but not $min: the oldest due job of each type is its own query.
    const [due, failed] = await Promise.all([
      jobs.aggregate<{ _id: string; n: number }>([{ $match: { status: 'scheduled', runAt: { $lte: now } } }, { $group: { _id: '$name', n: { $sum: 1 } } }]).toArray(),
      jobs.aggregate<{ _id: string; n: number }>([{ $match: { status: 'failed' } }, { $group: { _id: '$name', n: { $sum: 1 } } }]).toArray(),
    ]);
    for (const name of defs.keys()) {
      const n = due.find((x) => x._id === name)?.n ?? 0;
      const oldest = n ? await jobs.find({ name, status: 'scheduled', runAt: { $lte: now } }, { projection: { runAt: 1 } }).sort({ runAt: 1 }).limit(1).next() : null;
      jobsDue.set({ job: name }, n);
      oldestDueJobAge.set({ job: name }, oldest ? Math.max(0, (now.getTime() - oldest.runAt.getTime()) / 1000) : 0);
      jobsFailed.set({ job: name }, failed.find((x) => x._id === name)?.n ?? 0);
    }
  });
  if (opts.enabled) {
    timer = setInterval(tick, opts.pollMs);
    timer.unref();
    tick();
  }
  opts.logger.info({ enabled: opts.enabled, jobs: [...defs.keys()] }, opts.enabled ? 'job runner started' : 'JOBS_ENABLED=false: this process schedules jobs but does not run them');

  return {
    runs: (name) => runs.get(name) ?? 0,
    scheduleUnique,
    async cancel(name, match) {
      const filter: Record<string, unknown> = { name };
      for (const [k, v] of Object.entries(match)) filter[`data.${k}`] = v;
      return (await jobs.deleteMany(filter)).deletedCount;
    },
    async close(timeoutMs) {
      stopped = true;
      stopMetrics();
      clearInterval(timer);
      // Running jobs get the shutdown budget to finish; a job cut off is re-run elsewhere once its claim expires.
      let t: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([polling, ...inFlight]), new Promise((r) => (t = setTimeout(r, timeoutMs)))]);
      clearTimeout(t);
    },
  };
}
