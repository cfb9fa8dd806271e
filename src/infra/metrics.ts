import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The process's Prometheus metrics (one server per process in production; tests that run several servers in
 * one process share them). Modules record through the named metrics below; `/metrics` exposes `registry`.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'medivoy_' });

const SECONDS = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const httpRequests = new Counter({
  name: 'medivoy_http_requests_total',
  help: 'HTTP requests by FHIR interaction (or area: auth, health, metrics, other), resource type and status',
  labelNames: ['interaction', 'resource_type', 'status'] as const,
  registers: [registry],
});
export const httpDuration = new Histogram({
  name: 'medivoy_http_request_duration_seconds',
  help: 'HTTP request latency by FHIR interaction and resource type',
  labelNames: ['interaction', 'resource_type'] as const,
  buckets: SECONDS,
  registers: [registry],
});
export const dbCommands = new Counter({
  name: 'medivoy_db_commands_total',
  help: 'Database round trips by command and outcome',
  labelNames: ['command', 'outcome'] as const,
  registers: [registry],
});
export const dbDuration = new Histogram({
  name: 'medivoy_db_command_duration_seconds',
  help: 'Database round-trip latency by command',
  labelNames: ['command'] as const,
  buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
  registers: [registry],
});
export const jobRuns = new Counter({
  name: 'medivoy_job_runs_total',
  help: 'Job runs finished in this process by job type and outcome (success, retry: failed and rescheduled, failed: given up)',
  labelNames: ['job', 'outcome'] as const,
  registers: [registry],
});
export const jobsDue = new Gauge({
  name: 'medivoy_jobs_due',
  help: 'Jobs due to run now (queue depth) by job type, read from the job collection at scrape time',
  labelNames: ['job'] as const,
  registers: [registry],
});
export const oldestDueJobAge = new Gauge({
  name: 'medivoy_jobs_oldest_due_age_seconds',
  help: 'How long the oldest due job of each type has been waiting',
  labelNames: ['job'] as const,
  registers: [registry],
});
export const jobsFailed = new Gauge({
  name: 'medivoy_jobs_failed',
  help: 'Jobs given up after their retries, by job type (kept with their last error)',
  labelNames: ['job'] as const,
  registers: [registry],
});
export const loginThrottled = new Counter({
  name: 'medivoy_login_throttled_total',
  help: 'Sign-in attempts refused by the failed-sign-in throttle, and locks taken (per account or IP)',
  labelNames: ['event'] as const,
  registers: [registry],
});
export const smartTokens = new Counter({
  name: 'medivoy_smart_tokens_issued_total',
  help: 'Access tokens issued by the SMART authorization server, by grant type',
  labelNames: ['grant_type'] as const,
  registers: [registry],
});
export const smartRefusals = new Counter({
  name: 'medivoy_smart_token_refusals_total',
  help: 'Token and authorization requests refused, by OAuth error code',
  labelNames: ['endpoint', 'error'] as const,
  registers: [registry],
});

/** Metrics computed when scraped (e.g. from the database); each collector is awaited before the answer. */
const collectors = new Set<() => Promise<void>>();

export function onScrape(collect: () => Promise<void>): () => void {
  collectors.add(collect);
  return () => collectors.delete(collect);
}

/** The text exposition of every metric, after running the scrape-time collectors (a failing one is skipped). */
export async function exposition(): Promise<string> {
  await Promise.all([...collectors].map((c) => c().catch(() => undefined)));
  return registry.metrics();
}
export const analyticsPasses = new Counter({
  name: 'medivoy_analytics_passes_total',
  help: 'Passes of $analytics figure sets by engine: sql (one statement on FerretDB\'s PostgreSQL) or driver (aggregation pipelines, one per month of a time-bound pass)',
  labelNames: ['engine'] as const,
  registers: [registry],
});
