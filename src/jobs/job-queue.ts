/**
 * The job port domain code sees: it schedules and cancels durable jobs by name and key and never sees the
 * runner (style: domain modules receive small ports). The implementation is jobs/job-runner.ts.
 */
export type JobData = Record<string, string | number | boolean>;

export interface JobQueue {
  /**
   * Schedules `name` to run at `runAt` with `data`. `key` identifies the job: scheduling the same key again
   * moves the existing job instead of adding a second one (a unique index settles concurrent calls).
   */
  scheduleUnique(name: string, key: string, runAt: Date, data: JobData): Promise<void>;
  /** Removes the pending jobs of `name` whose data has all the given values; resolves to how many. */
  cancel(name: string, match: JobData): Promise<number>;
}

/** A job type: its handler throws to fail (and be retried with back-off). */
export interface JobDefinition {
  name: string;
  handler: (data: JobData) => Promise<void>;
  /** Retries after a failure (exponential back-off from `retryDelayMs`, doubling). */
  maxRetries?: number;
  retryDelayMs?: number;
  /** Recurring jobs: the interval in milliseconds (one job for the whole deployment, not one per process). */
  everyMs?: number;
}
