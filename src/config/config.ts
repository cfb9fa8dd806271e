/**
 * Typed configuration: the only module that reads process.env.
 * Every variable is checked at start-up and all problems are reported at once.
 */

export interface Config {
  nodeEnv: 'development' | 'production' | 'test';
  host: string;
  port: number;
  /** Public base URL of the server (the FHIR base is `${baseUrl}/fhir`); unset: the address it listens on. */
  baseUrl: string | undefined;
  /** Unset: an embedded MongoDB is started (mongodb-memory-server). */
  mongodbUri: string | undefined;
  mongodbDb: string;
  /** A separate listen address for an unauthenticated /metrics (e.g. 127.0.0.1:9464); unset: only the main port's, with a token. */
  metricsListen?: { host: string; port: number };
  /** How long read/vread keep a version in the resource cache (0: no cache). */
  resourceCacheMs: number;
  /** How long each process remembers who a token belongs to (0: looked up on every request). */
  accessCacheMs: number;
  /** How long start-up waits for the database before giving up with a message. */
  mongodbConnectTimeoutMs: number;
  // --- faults: begin ---
  /** How long a request waits for a database that stopped answering before it is answered 503. */
  mongodbOperationWaitMs: number;
  // --- faults: end ---
  /** Unset: in-process fallbacks for cache and rate limits. */
  redisUrl: string | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  maxBodySize: number;
  corsOrigins: '*' | string[];
  searchDefaultCount: number;
  searchMaxCount: number;
  /** Largest batch/transaction Bundle accepted (more entries: 413). */
  maxBundleEntries: number;
  shutdownTimeoutMs: number;
  /** How long an Idempotency-Key is remembered. */
  idempotencyTtlMs: number;
  /** How long a search paging link stays valid. */
  searchCursorTtlMs: number;
  /** Most resources `_include`/`_revinclude` add to one search page. */
  searchMaxIncludes: number;
  /**
   * FerretDB on PostgreSQL only: the PostgreSQL database FerretDB stores into. When set, the server adds GIN
   * indexes on the search fields of FerretDB's tables so that searches are index lookups, not table scans.
   */
  ferretdbPostgresUrl: string | undefined;
  /**
   * With `ferretdbPostgresUrl`: run searches as SQL on FerretDB's PostgreSQL tables (filter, sort and limit
   * there, reading only the fields a page needs) instead of through FerretDB, which sorts every match in memory.
   */
  ferretdbSqlSearch: boolean;
  /**
   * With `ferretdbPostgresUrl`: compute $analytics figures as SQL on FerretDB's PostgreSQL table of the facts
   * (one statement per pass, ranges on an expression index) instead of aggregation pipelines through FerretDB.
   */
  ferretdbSqlAnalytics: boolean;
  /** Run custom-SearchParameter reindex jobs in this process (any number of processes may). */
  reindexWorker: boolean;
  /** How often a process looks for SearchParameters and reindex jobs other processes wrote. */
  reindexPollMs: number;
  /** Resources re-indexed per checkpoint. */
  reindexBatchSize: number;
  /** How long `Appointment/$hold` keeps a slot. */
  holdMs: number;
  /** How far ahead slots may be booked. */
  bookingHorizonDays: number;
  /** Patients may cancel until this long before the start. */
  cancellationCutoffMs: number;
  /** Run due background jobs (reminders, notices, no-show marking) in this process; any number of processes may. */
  jobsEnabled: boolean;
  /** Subscriptions (src/subscriptions/service.ts). */
  subscriptions: import('../subscriptions/service.js').SubscriptionConfig;
  // --- bulk: begin ---
  /** Bulk Data $export and $import (src/bulk/service.ts). */
  bulk: import('../bulk/service.js').BulkConfig;
  // --- bulk: end ---
  // --- audit: begin ---
  /** Audit trail of patient-data access (src/audit/). */
  audit: {
    enabled: boolean;
    /** Refuse PHI requests with 503 while the audit store fails. */
    failClosed: boolean;
    /** Read records are written behind: at most this long or this many records are buffered. */
    flushMs: number;
    flushRecords: number;
    /** Successful reads by id of one agent within a flush window share one record. */
    aggregateReads: boolean;
    /** Optional HMAC key for the hash chain (without: plain SHA-256). */
    hmacKey: string | undefined;
    /** Records older than this are archived to NDJSON and removed (0: kept forever). */
    retentionDays: number;
    archiveDir: string;
    retentionEveryMs: number;
  };
  // --- audit: end ---
  /** How often a process looks for due jobs. */
  jobsPollMs: number;
  // --- faults: begin ---
  /** How long a job run (and a notification being sent) is leased to a process before another may take it over. */
  jobsLeaseMs: number;
  // --- faults: end ---
  // --- analytics: begin ---
  /** $analytics: how long computed figures stay cached (ANALYTICS_CACHE_SECONDS; 0: off) and the longest period (ANALYTICS_MAX_PERIOD_DAYS). */
  analytics: { cacheMs: number; maxPeriodDays: number };
  // --- analytics: end ---
  /** Appointment reminders go out this long before the start, one per offset (REMINDER_OFFSETS, e.g. 24h,2h,30m). */
  reminderOffsetsMs: number[];
  /** A booked appointment is marked no-show this long after its end without arrival. */
  noShowGraceMinutes: number;
  /** Load the product's `Practitioner?rating` SearchParameter at start when absent (false: a deployment defines its own). */
  ratingSearchParameter: boolean;
  /** SMTP server for outgoing e-mail (smtp:// or smtps://); unset: e-mails are written to the log. */
  smtpUrl: string | undefined;
  /** Sender of outgoing e-mail, e.g. `Medivoy <no-reply@example.org>`. */
  mailFrom: string;
  /** Failed logins per account within the lockout window before further attempts get 429. */
  authMaxFailures: number;
  /** Failed logins per client IP within the window (higher than per account: clinics share NAT addresses). */
  authMaxFailuresPerIp: number;
  /** Window over which failed logins are counted, and how long a lockout lasts. */
  authLockoutMs: number;
  /** How long a password-reset token stays valid. */
  passwordResetTtlMs: number;
  /** Page that receives `?token=` from the reset e-mail; unset: the e-mail shows the token only. */
  passwordResetUrl: string | undefined;
  // --- rate limits: begin ---
  /** Request limits per client, user and IP (http/rate-limit.ts); a client's registration may set its own. */
  rateLimits: {
    enabled: boolean;
    algorithm: 'sliding-window' | 'token-bucket';
    windowMs: number;
    perClient: number;
    perUser: number;
    perIp: number;
    /** Sign-in requests (login form, token endpoint, registration, password flows) per IP. */
    signInPerIp: number;
  };
  // --- rate limits: end ---
  // --- billing: begin ---
  /** Stripe (src/billing/stripe-gateway.ts): no secret key, no payments ($pay 503); no webhook secret, no webhook (503). */
  stripe: { secretKey?: string; webhookSecret?: string; apiBase?: string };
  // --- billing: end ---
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Parses sizes such as `16mb`, `512kb` or plain bytes. */
export function parseSize(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = (m[2] ?? 'b').toLowerCase();
  const factor = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[unit as 'b'];
  return Math.floor(Number(m[1]) * factor);
}

/** Parses a duration such as `30s`, `30m`, `2h` or `1d` into milliseconds (a unit is required). */
export function parseDuration(value: string): number | undefined {
  const m = /^\s*(\d+)\s*(s|m|h|d)\s*$/i.exec(value);
  if (!m) return undefined;
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2]!.toLowerCase() as 's'];
}

/** Builds the configuration from an environment, throwing one ConfigError naming every bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];

  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    problems.push(`${name}=${JSON.stringify(v)} must be one of ${allowed.join(', ')}`);
    return fallback;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name}=${JSON.stringify(v)} must be an integer between ${min} and ${max}`);
      return fallback;
    }
    return n;
  };
  const url = (name: string, protocols: string[]): string | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    try {
      const u = new URL(v);
      if (!protocols.includes(u.protocol)) throw new Error('protocol');
      return v;
    } catch {
      problems.push(`${name}=${JSON.stringify(v)} must be a URL with scheme ${protocols.join(' or ')}`);
      return undefined;
    }
  };

  const nodeEnv = oneOf('NODE_ENV', ['development', 'production', 'test'] as const, 'development');
  const port = int('PORT', 8080, 0, 65535);
  const host = env.HOST || '0.0.0.0';
  const baseUrl = url('BASE_URL', ['http:', 'https:'])?.replace(/\/+$/, '');
  // A connection string may list several hosts (a replica set), which the WHATWG URL parser refuses.
  let mongodbUri = env.MONGODB_URI || undefined;
  if (mongodbUri && !/^mongodb(\+srv)?:\/\/[^\s/?#]+(\/[^\s?#]*)?(\?\S*)?$/.test(mongodbUri)) {
    problems.push(`MONGODB_URI=${JSON.stringify(mongodbUri)} must be a connection string such as mongodb://host1:27017,host2:27017/?replicaSet=rs0`);
    mongodbUri = undefined;
  }
  const mongodbDb = env.MONGODB_DB || 'medivoy';
  const mongodbConnectTimeoutMs = int('MONGODB_CONNECT_TIMEOUT_MS', 30_000, 100, 600_000);
  // --- faults: begin ---
  const mongodbOperationWaitMs = int('MONGODB_OPERATION_WAIT_MS', 5_000, 100, 600_000);
  // --- faults: end ---
  const accessCacheMs = int('ACCESS_CACHE_SECONDS', 30, 0, 300) * 1000;
  const resourceCacheMs = int('RESOURCE_CACHE_SECONDS', 300, 0, 86400) * 1000;
  let metricsListen: Config['metricsListen'];
  if (env.METRICS_LISTEN) {
    const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(env.METRICS_LISTEN);
    if (!m || Number(m[2]) > 65535) problems.push(`METRICS_LISTEN=${JSON.stringify(env.METRICS_LISTEN)} must be host:port, e.g. 127.0.0.1:9464`);
    else metricsListen = { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  }
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(mongodbDb)) problems.push(`MONGODB_DB=${JSON.stringify(mongodbDb)} must be 1-63 letters, digits, _ or -`);
  const redisUrl = url('REDIS_URL', ['redis:', 'rediss:']);
  const logLevel = oneOf('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info');

  let maxBodySize = 16 * 1024 * 1024;
  if (env.MAX_BODY_SIZE) {
    const s = parseSize(env.MAX_BODY_SIZE);
    if (s === undefined || s < 1024) problems.push(`MAX_BODY_SIZE=${JSON.stringify(env.MAX_BODY_SIZE)} must be a size such as 16mb (at least 1kb)`);
    else maxBodySize = s;
  }

  let corsOrigins: Config['corsOrigins'] = '*';
  if (env.CORS_ORIGINS && env.CORS_ORIGINS.trim() !== '*') {
    corsOrigins = env.CORS_ORIGINS.split(',').map((o) => o.trim()).filter(Boolean);
    for (const o of corsOrigins) {
      try {
        if (new URL(o).origin !== o) throw new Error('not an origin');
      } catch {
        problems.push(`CORS_ORIGINS entry ${JSON.stringify(o)} must be an origin such as https://app.example.org`);
      }
    }
  }

  const searchMaxCount = int('SEARCH_MAX_COUNT', 1000, 1, 10000);
  const searchDefaultCount = int('SEARCH_DEFAULT_COUNT', 20, 1, 10000);
  if (searchDefaultCount > searchMaxCount) problems.push('SEARCH_DEFAULT_COUNT must not exceed SEARCH_MAX_COUNT');
  const shutdownTimeoutMs = int('SHUTDOWN_TIMEOUT_MS', 10000, 0, 600000);
  const maxBundleEntries = int('MAX_BUNDLE_ENTRIES', 10000, 1, 100000);
  const idempotencyTtlMs = int('IDEMPOTENCY_TTL_SECONDS', 86400, 1, 30 * 86400) * 1000;
  const searchCursorTtlMs = int('SEARCH_CURSOR_TTL_SECONDS', 3600, 1, 30 * 86400) * 1000;
  const searchMaxIncludes = int('SEARCH_MAX_INCLUDES', 1000, 1, 100000);
  const reindexWorker = oneOf('REINDEX_WORKER', ['true', 'false'] as const, 'true') === 'true';
  const reindexPollMs = int('REINDEX_POLL_MS', 5000, 100, 600000);
  const reindexBatchSize = int('REINDEX_BATCH_SIZE', 200, 1, 10000);
  const holdMs = int('HOLD_SECONDS', 600, 1, 86400) * 1000;
  const bookingHorizonDays = int('BOOKING_HORIZON_DAYS', 90, 1, 3650);
  const cancellationCutoffMs = int('CANCELLATION_CUTOFF_MINUTES', 24 * 60, 0, 30 * 24 * 60) * 60_000;
  let ferretdbPostgresUrl: string | undefined;
  if (env.FERRETDB_POSTGRES_URL) {
    if (!/^postgres(ql)?:\/\//.test(env.FERRETDB_POSTGRES_URL)) problems.push('FERRETDB_POSTGRES_URL must be a postgres:// URL');
    else ferretdbPostgresUrl = env.FERRETDB_POSTGRES_URL;
  }
  const ferretdbSqlSearch = oneOf('FERRETDB_SQL_SEARCH', ['true', 'false'] as const, 'true') === 'true';
  const ferretdbSqlAnalytics = oneOf('FERRETDB_SQL_ANALYTICS', ['true', 'false'] as const, 'true') === 'true';

  const jobsEnabled = oneOf('JOBS_ENABLED', ['true', 'false'] as const, 'true') === 'true';
  const jobsPollMs = int('JOBS_POLL_MS', 5000, 100, 600000);
  // --- faults: begin ---
  const jobsLeaseMs = int('JOBS_LEASE_SECONDS', 600, 1, 86400) * 1000;
  // --- faults: end ---
  let reminderOffsetsMs = [24 * 3_600_000, 2 * 3_600_000, 30 * 60_000];
  if (env.REMINDER_OFFSETS) {
    const parsed = env.REMINDER_OFFSETS.split(',').map((x) => parseDuration(x));
    if (parsed.some((x) => x === undefined || x <= 0)) problems.push(`REMINDER_OFFSETS=${JSON.stringify(env.REMINDER_OFFSETS)} must be durations such as 24h,2h,30m (units s, m, h, d)`);
    else reminderOffsetsMs = [...new Set(parsed as number[])].sort((a, b) => b - a);
  }
  const noShowGraceMinutes = int('NOSHOW_GRACE_MINUTES', 15, 0, 24 * 60);
  const ratingSearchParameter = oneOf('RATING_SEARCH_PARAMETER', ['true', 'false'] as const, 'true') === 'true';
  const smtpUrl = url('SMTP_URL', ['smtp:', 'smtps:']);
  const mailFrom = env.MAIL_FROM || 'Medivoy <no-reply@medivoy.local>';
  if (!/^[^\s@<>]+@[^\s@<>]+$|<[^\s@<>]+@[^\s@<>]+>$/.test(mailFrom)) problems.push(`MAIL_FROM=${JSON.stringify(mailFrom)} must be an address such as Medivoy <no-reply@example.org>`);
  const authMaxFailures = int('AUTH_MAX_FAILURES', 5, 1, 1000);
  const authMaxFailuresPerIp = int('AUTH_MAX_FAILURES_PER_IP', 20, 1, 100000);
  const authLockoutMs = int('AUTH_LOCKOUT_SECONDS', 900, 1, 86400) * 1000;
  const passwordResetTtlMs = int('PASSWORD_RESET_TTL_SECONDS', 1800, 1, 86400) * 1000;
  const passwordResetUrl = url('PASSWORD_RESET_URL', ['http:', 'https:']);

  // --- rate limits: begin ---
  // Under NODE_ENV=test the default limits are out of reach, so only tests that set limits meet them.
  const unlimited = nodeEnv === 'test' ? 1_000_000 : undefined;
  const rateLimits: Config['rateLimits'] = {
    enabled: oneOf('RATE_LIMIT_ENABLED', ['true', 'false'] as const, 'true') === 'true',
    algorithm: oneOf('RATE_LIMIT_ALGORITHM', ['sliding-window', 'token-bucket'] as const, 'sliding-window'),
    windowMs: int('RATE_LIMIT_WINDOW_SECONDS', 60, 1, 86400) * 1000,
    perClient: int('RATE_LIMIT_PER_CLIENT', unlimited ?? 600, 1, 10_000_000),
    perUser: int('RATE_LIMIT_PER_USER', unlimited ?? 300, 1, 10_000_000),
    perIp: int('RATE_LIMIT_PER_IP', unlimited ?? 1200, 1, 10_000_000),
    signInPerIp: int('RATE_LIMIT_SIGNIN_PER_IP', unlimited ?? 60, 1, 10_000_000),
  };
  // --- rate limits: end ---

  // --- subscriptions: begin ---
  const hours = env.SUBSCRIPTION_RETRY_HOURS ? Number(env.SUBSCRIPTION_RETRY_HOURS) : 24;
  if (!Number.isFinite(hours) || hours <= 0 || hours > 24 * 30) problems.push(`SUBSCRIPTION_RETRY_HOURS=${JSON.stringify(env.SUBSCRIPTION_RETRY_HOURS)} must be a number of hours above 0 (e.g. 24 or 0.5)`);
  const subscriptions = {
    enabled: oneOf('SUBSCRIPTIONS_WORKER', ['true', 'false'] as const, 'true') === 'true',
    endpointAllowlist: (env.SUBSCRIPTION_ENDPOINT_ALLOWLIST ?? '').split(',').map((x) => x.trim()).filter(Boolean),
    retryMs: Math.round(hours * 3_600_000),
    backoffBaseMs: int('SUBSCRIPTION_BACKOFF_BASE_MS', 5_000, 10, 3_600_000),
    backoffMaxMs: int('SUBSCRIPTION_BACKOFF_MAX_MS', 15 * 60_000, 10, 24 * 3_600_000),
    pollMs: int('SUBSCRIPTION_POLL_MS', 1_000, 20, 600_000),
    leaseMs: int('SUBSCRIPTION_LEASE_MS', 60_000, 1_000, 3_600_000),
    defaultTimeoutSeconds: int('SUBSCRIPTION_TIMEOUT_SECONDS', 10, 1, 120),
    propagationMs: int('SUBSCRIPTION_PROPAGATION_MS', 10_000, 500, 600_000),
  };
  for (const entry of subscriptions.endpointAllowlist) {
    if (entry.includes('/') && !/^[0-9a-fA-F.:]+\/\d{1,3}$/.test(entry)) problems.push(`SUBSCRIPTION_ENDPOINT_ALLOWLIST: '${entry}' is not a host, *.domain, IP address or CIDR range`);
  }
  if (subscriptions.propagationMs < 2 * subscriptions.pollMs + 500) problems.push('SUBSCRIPTION_PROPAGATION_MS must be at least twice SUBSCRIPTION_POLL_MS plus half a second');
  if (subscriptions.defaultTimeoutSeconds * 1000 * 2 + 4_000 > subscriptions.leaseMs) problems.push('SUBSCRIPTION_LEASE_MS must exceed twice SUBSCRIPTION_TIMEOUT_SECONDS plus 4 seconds');
  // --- subscriptions: end ---

  // --- bulk: begin ---
  const bulkDuration = (name: string, fallback: number) => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    const ms = parseDuration(v);
    if (ms === undefined || ms <= 0) problems.push(`${name}=${JSON.stringify(v)} must be a duration such as 30s, 10m, 2h or 1d`);
    return ms ?? fallback;
  };
  const bulk = {
    fileStore: oneOf('BULK_FILE_STORE', ['gridfs', 'directory'] as const, 'gridfs'),
    fileDir: env.BULK_FILE_DIR || undefined,
    maxResourcesPerFile: int('BULK_FILE_MAX_RESOURCES', 100_000, 1, 10_000_000),
    expiryMs: bulkDuration('BULK_FILE_EXPIRY', 24 * 3_600_000),
    sliceMs: int('BULK_SLICE_MS', 10_000, 100, 600_000),
    retryAfterSeconds: int('BULK_RETRY_AFTER_SECONDS', 5, 1, 3600),
    maxActivePerClient: int('BULK_MAX_ACTIVE_PER_CLIENT', 3, 1, 1000),
    importDir: env.BULK_IMPORT_DIR || undefined,
    importOrigins: (env.BULK_IMPORT_ORIGINS ?? '').split(',').map((x) => x.trim()).filter(Boolean),
    sweepMs: bulkDuration('BULK_SWEEP_INTERVAL', 5 * 60_000),
  };
  if (bulk.fileStore === 'directory' && !bulk.fileDir) problems.push('BULK_FILE_STORE=directory needs BULK_FILE_DIR (the directory files go to)');
  for (const o of bulk.importOrigins) {
    try {
      if (new URL(o).origin !== o) throw new Error('not an origin');
    } catch {
      problems.push(`BULK_IMPORT_ORIGINS: '${o}' is not an origin such as https://files.example.org`);
    }
  }
  // --- bulk: end ---
  // --- billing: begin ---
  const stripe: Config['stripe'] = {
    secretKey: env.STRIPE_SECRET_KEY || undefined,
    webhookSecret: env.STRIPE_WEBHOOK_SECRET || undefined,
    apiBase: url('STRIPE_API_BASE', ['http:', 'https:'])?.replace(/\/+$/, ''),
  };
  if (stripe.secretKey && !/^(sk|rk)_(test|live)_\S+$/.test(stripe.secretKey)) problems.push('STRIPE_SECRET_KEY must be a Stripe secret key (sk_test_… or sk_live_…)');
  if (stripe.webhookSecret && !/^whsec_\S+$/.test(stripe.webhookSecret)) problems.push('STRIPE_WEBHOOK_SECRET must be a webhook signing secret (whsec_…)');
  // --- billing: end ---
  // --- analytics: begin ---
  const analytics = { cacheMs: int('ANALYTICS_CACHE_SECONDS', 300, 0, 86400) * 1000, maxPeriodDays: int('ANALYTICS_MAX_PERIOD_DAYS', 366, 1, 3660) };
  // --- analytics: end ---
  // --- audit: begin ---
  const audit: Config['audit'] = {
    enabled: oneOf('AUDIT_ENABLED', ['true', 'false'] as const, 'true') === 'true',
    failClosed: oneOf('AUDIT_FAIL_CLOSED', ['true', 'false'] as const, 'true') === 'true',
    flushMs: int('AUDIT_FLUSH_MS', 200, 10, 60_000),
    flushRecords: int('AUDIT_FLUSH_RECORDS', 100, 1, 10_000),
    aggregateReads: oneOf('AUDIT_AGGREGATE_READS', ['true', 'false'] as const, 'true') === 'true',
    hmacKey: env.AUDIT_HMAC_KEY || undefined,
    retentionDays: int('AUDIT_RETENTION_DAYS', 0, 0, 36_500),
    archiveDir: env.AUDIT_ARCHIVE_DIR || 'audit-archive',
    retentionEveryMs: int('AUDIT_RETENTION_EVERY_MINUTES', 60, 1, 7 * 24 * 60) * 60_000,
  };
  // --- audit: end ---

  if (problems.length) throw new ConfigError(problems);
  return {
    nodeEnv, host, port, baseUrl, mongodbUri, mongodbDb, mongodbConnectTimeoutMs, mongodbOperationWaitMs, metricsListen, accessCacheMs, resourceCacheMs, redisUrl, logLevel, maxBodySize, corsOrigins,
    searchDefaultCount, searchMaxCount, maxBundleEntries, shutdownTimeoutMs, idempotencyTtlMs,
    searchCursorTtlMs, searchMaxIncludes, ferretdbPostgresUrl, ferretdbSqlSearch, ferretdbSqlAnalytics, reindexWorker, reindexPollMs, reindexBatchSize,
    holdMs, bookingHorizonDays, cancellationCutoffMs,
    jobsEnabled, jobsPollMs, jobsLeaseMs, reminderOffsetsMs, noShowGraceMinutes, ratingSearchParameter,
    smtpUrl, mailFrom, authMaxFailures, authMaxFailuresPerIp, authLockoutMs, passwordResetTtlMs, passwordResetUrl,
    rateLimits, subscriptions,
    bulk, // --- bulk ---
    stripe,
    analytics,
    // --- audit: begin ---
    audit,
    // --- audit: end ---
  };
}
