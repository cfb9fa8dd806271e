import { runEntryPoint } from './support/run-entry-point.js';
import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig, parseSize } from '../src/config/config.js';

const FERRET = process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('applies the documented defaults to an empty environment', () => {
    expect(loadConfig({})).toEqual({
      nodeEnv: 'development',
      host: '0.0.0.0',
      port: 8080,
      baseUrl: undefined,
      mongodbUri: undefined,
      mongodbDb: 'medivoy',
      mongodbConnectTimeoutMs: 30000,
      mongodbOperationWaitMs: 5000, // faults
      accessCacheMs: 30000,
      resourceCacheMs: 300000,
      metricsListen: undefined,
      redisUrl: undefined,
      logLevel: 'info',
      maxBodySize: 16 * 1024 * 1024,
      corsOrigins: '*',
      searchDefaultCount: 20,
      searchMaxCount: 1000,
      maxBundleEntries: 10000,
      shutdownTimeoutMs: 10000,
      idempotencyTtlMs: 86400 * 1000,
      searchCursorTtlMs: 3600 * 1000,
      searchMaxIncludes: 1000,
      ferretdbPostgresUrl: undefined,
      ferretdbSqlSearch: true,
      ferretdbSqlAnalytics: true,
      reindexWorker: true,
      reindexPollMs: 5000,
      reindexBatchSize: 200,
      holdMs: 600_000,
      bookingHorizonDays: 90,
      cancellationCutoffMs: 24 * 3600_000,
      jobsEnabled: true,
      jobsPollMs: 5000,
      jobsLeaseMs: 600_000, // faults
      reminderOffsetsMs: [24 * 3600_000, 2 * 3600_000, 30 * 60_000],
      noShowGraceMinutes: 15,
      ratingSearchParameter: true,
      smtpUrl: undefined,
      mailFrom: 'Medivoy <no-reply@medivoy.local>',
      authMaxFailures: 5,
      authMaxFailuresPerIp: 20,
      authLockoutMs: 900 * 1000,
      passwordResetTtlMs: 1800 * 1000,
      passwordResetUrl: undefined,
      rateLimits: { enabled: true, algorithm: 'sliding-window', windowMs: 60_000, perClient: 600, perUser: 300, perIp: 1200, signInPerIp: 60 },
      // --- analytics: begin ---
      analytics: { cacheMs: 300_000, maxPeriodDays: 366 },
      // --- analytics: end ---
      subscriptions: { enabled: true, endpointAllowlist: [], retryMs: 24 * 3600_000, backoffBaseMs: 5000, backoffMaxMs: 15 * 60_000, pollMs: 1000, leaseMs: 60_000, defaultTimeoutSeconds: 10, propagationMs: 10_000 },
      // --- bulk: begin ---
      bulk: {
        fileStore: 'gridfs', fileDir: undefined, maxResourcesPerFile: 100_000, expiryMs: 24 * 3_600_000, sliceMs: 10_000, retryAfterSeconds: 5,
        maxActivePerClient: 3, importDir: undefined, importOrigins: [], sweepMs: 5 * 60_000,
      },
      // --- bulk: end ---
      stripe: { secretKey: undefined, webhookSecret: undefined, apiBase: undefined },
      // --- audit: begin ---
      audit: { enabled: true, failClosed: true, flushMs: 200, flushRecords: 100, aggregateReads: true, hmacKey: undefined, retentionDays: 0, archiveDir: 'audit-archive', retentionEveryMs: 3_600_000 },
      // --- audit: end ---
    });
  });

  // --- bulk: begin ---
  it('reads bulk data settings (file store, part size, expiry, import sources) and refuses bad ones by name', () => {
    expect(loadConfig({ BULK_FILE_STORE: 'directory', BULK_FILE_DIR: '/var/lib/medivoy/bulk', BULK_FILE_MAX_RESOURCES: '5000', BULK_FILE_EXPIRY: '2h', BULK_IMPORT_ORIGINS: 'https://files.example.org' }).bulk)
      .toMatchObject({ fileStore: 'directory', fileDir: '/var/lib/medivoy/bulk', maxResourcesPerFile: 5000, expiryMs: 7_200_000, importOrigins: ['https://files.example.org'] });
    const problems = configError({ BULK_FILE_STORE: 'directory', BULK_FILE_EXPIRY: 'soon', BULK_IMPORT_ORIGINS: 'https://x.example/path', BULK_FILE_MAX_RESOURCES: '0' }).problems.join();
    expect(problems).toMatch(/BULK_FILE_DIR/);
    expect(problems).toMatch(/BULK_FILE_EXPIRY/);
    expect(problems).toMatch(/BULK_IMPORT_ORIGINS/);
    expect(problems).toMatch(/BULK_FILE_MAX_RESOURCES/);
  });
  // --- bulk: end ---

  // --- billing: begin ---
  it('reads the Stripe keys and refuses malformed ones by name', () => {
    expect(loadConfig({ STRIPE_SECRET_KEY: 'sk_test_abc', STRIPE_WEBHOOK_SECRET: 'whsec_x', STRIPE_API_BASE: 'http://127.0.0.1:12111/' }).stripe)
      .toEqual({ secretKey: 'sk_test_abc', webhookSecret: 'whsec_x', apiBase: 'http://127.0.0.1:12111' });
    const problems = configError({ STRIPE_SECRET_KEY: 'pk_test_abc', STRIPE_WEBHOOK_SECRET: 'secret', STRIPE_API_BASE: 'ftp://x' }).problems.join();
    expect(problems).toMatch(/STRIPE_SECRET_KEY/);
    expect(problems).toMatch(/STRIPE_WEBHOOK_SECRET/);
    expect(problems).toMatch(/STRIPE_API_BASE/);
  });
  // --- billing: end ---

  // --- audit: begin ---
  it('reads the audit settings and refuses bad ones by name', () => {
    expect(loadConfig({ AUDIT_ENABLED: 'false', AUDIT_FAIL_CLOSED: 'false', AUDIT_FLUSH_MS: '50', AUDIT_FLUSH_RECORDS: '10', AUDIT_AGGREGATE_READS: 'false', AUDIT_RETENTION_DAYS: '365', AUDIT_ARCHIVE_DIR: '/var/audit', AUDIT_HMAC_KEY: 'k' }).audit)
      .toEqual({ enabled: false, failClosed: false, flushMs: 50, flushRecords: 10, aggregateReads: false, hmacKey: 'k', retentionDays: 365, archiveDir: '/var/audit', retentionEveryMs: 3_600_000 });
    const problems = configError({ AUDIT_ENABLED: 'maybe', AUDIT_FLUSH_MS: '0', AUDIT_RETENTION_DAYS: '-1' }).problems.join();
    expect(problems).toMatch(/AUDIT_ENABLED/);
    expect(problems).toMatch(/AUDIT_FLUSH_MS/);
    expect(problems).toMatch(/AUDIT_RETENTION_DAYS/);
  });
  // --- audit: end ---

  it('reads subscription settings (retry period in hours, allow-list) and refuses bad ones by name', () => {
    expect(loadConfig({ SUBSCRIPTION_RETRY_HOURS: '0.5', SUBSCRIPTION_ENDPOINT_ALLOWLIST: 'hooks.example.org, *.lab.example,10.0.0.0/8' }).subscriptions)
      .toMatchObject({ retryMs: 1_800_000, endpointAllowlist: ['hooks.example.org', '*.lab.example', '10.0.0.0/8'] });
    const problems = configError({ SUBSCRIPTION_RETRY_HOURS: 'soon', SUBSCRIPTION_ENDPOINT_ALLOWLIST: 'a/b', SUBSCRIPTION_LEASE_MS: '5000' }).problems.join();
    expect(problems).toMatch(/SUBSCRIPTION_RETRY_HOURS/);
    expect(problems).toMatch(/SUBSCRIPTION_ENDPOINT_ALLOWLIST/);
    expect(problems).toMatch(/SUBSCRIPTION_LEASE_MS/);
  });

  it('reads rate limits, with out-of-reach defaults under NODE_ENV=test, and refuses bad ones by name', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).rateLimits).toMatchObject({ enabled: true, perClient: 1_000_000, perUser: 1_000_000, perIp: 1_000_000, signInPerIp: 1_000_000 });
    expect(loadConfig({ RATE_LIMIT_ALGORITHM: 'token-bucket', RATE_LIMIT_WINDOW_SECONDS: '10', RATE_LIMIT_PER_CLIENT: '5', RATE_LIMIT_ENABLED: 'false' }).rateLimits)
      .toMatchObject({ enabled: false, algorithm: 'token-bucket', windowMs: 10_000, perClient: 5 });
    const problems = configError({ RATE_LIMIT_ALGORITHM: 'leaky', RATE_LIMIT_PER_IP: '0' }).problems.join();
    expect(problems).toMatch(/RATE_LIMIT_ALGORITHM/);
    expect(problems).toMatch(/RATE_LIMIT_PER_IP/);
  });

  it('reads job and reminder settings, refusing bad offsets by name', () => {
    const c = loadConfig({ JOBS_ENABLED: 'false', JOBS_POLL_MS: '200', REMINDER_OFFSETS: '30s, 2h,10s', NOSHOW_GRACE_MINUTES: '0', RATING_SEARCH_PARAMETER: 'false' });
    expect(c).toMatchObject({ jobsEnabled: false, jobsPollMs: 200, reminderOffsetsMs: [7_200_000, 30_000, 10_000], noShowGraceMinutes: 0, ratingSearchParameter: false });
    expect(configError({ REMINDER_OFFSETS: '24h,soon' }).problems.join()).toMatch(/REMINDER_OFFSETS/);
    expect(configError({ JOBS_ENABLED: 'yes' }).problems.join()).toMatch(/JOBS_ENABLED/);
  });

  // --- faults: begin ---
  it('reads how long requests wait for the database and how long job leases last, refusing bad values by name', () => {
    expect(loadConfig({})).toMatchObject({ mongodbOperationWaitMs: 5000, jobsLeaseMs: 600_000 });
    expect(loadConfig({ MONGODB_OPERATION_WAIT_MS: '1500', JOBS_LEASE_SECONDS: '3' })).toMatchObject({ mongodbOperationWaitMs: 1500, jobsLeaseMs: 3000 });
    const problems = configError({ MONGODB_OPERATION_WAIT_MS: '10', JOBS_LEASE_SECONDS: '0' }).problems.join();
    expect(problems).toMatch(/MONGODB_OPERATION_WAIT_MS/);
    expect(problems).toMatch(/JOBS_LEASE_SECONDS/);
  });
  // --- faults: end ---

  it('treats empty variables as unset', () => {
    expect(loadConfig({ PORT: '', LOG_LEVEL: '', MAX_BODY_SIZE: '', CORS_ORIGINS: '', MONGODB_URI: '' })).toEqual(loadConfig({}));
  });

  it('reads good values', () => {
    const c = loadConfig({
      NODE_ENV: 'production',
      PORT: '0',
      HOST: '127.0.0.1',
      BASE_URL: 'https://fhir.example.org/',
      MONGODB_URI: 'mongodb://db1:27017,db2:27017/?replicaSet=rs0',
      MONGODB_DB: 'clinic_a',
      REDIS_URL: 'rediss://cache:6380',
      LOG_LEVEL: 'warn',
      MAX_BODY_SIZE: '512kb',
      CORS_ORIGINS: 'https://app.example.org, http://localhost:3000',
      SEARCH_DEFAULT_COUNT: '50',
      SEARCH_MAX_COUNT: '500',
      SHUTDOWN_TIMEOUT_MS: '0',
    });
    expect(c).toMatchObject({
      nodeEnv: 'production',
      port: 0,
      host: '127.0.0.1',
      baseUrl: 'https://fhir.example.org',
      mongodbUri: 'mongodb://db1:27017,db2:27017/?replicaSet=rs0',
      mongodbDb: 'clinic_a',
      redisUrl: 'rediss://cache:6380',
      logLevel: 'warn',
      maxBodySize: 512 * 1024,
      corsOrigins: ['https://app.example.org', 'http://localhost:3000'],
      searchDefaultCount: 50,
      searchMaxCount: 500,
      shutdownTimeoutMs: 0,
    });
  });

  it('reports every bad variable at once, each by name', () => {
    const err = configError({ PORT: 'abc', LOG_LEVEL: 'loud', MAX_BODY_SIZE: 'huge', CORS_ORIGINS: 'notaurl' });
    expect(err.problems).toHaveLength(4);
    for (const [name, value] of [['PORT', 'abc'], ['LOG_LEVEL', 'loud'], ['MAX_BODY_SIZE', 'huge'], ['CORS_ORIGINS', 'notaurl']]) {
      const problem = err.problems.find((p) => p.startsWith(name));
      expect(problem).toBeDefined();
      expect(problem).toContain(value);
      expect(err.message).toContain(problem);
    }
  });

  it.each([
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['NODE_ENV', 'staging'],
    ['BASE_URL', 'ftp://example.org'],
    ['MONGODB_URI', 'http://127.0.0.1:27017'],
    ['MONGODB_URI', 'not a url'],
    ['MONGODB_DB', 'bad/name'],
    ['REDIS_URL', 'localhost:6379'],
    ['MAX_BODY_SIZE', '10'],
    ['MAX_BODY_SIZE', '-5mb'],
    ['CORS_ORIGINS', 'https://app.example.org/path'],
    ['SEARCH_MAX_COUNT', '0'],
    ['SHUTDOWN_TIMEOUT_MS', 'soon'],
    ['IDEMPOTENCY_TTL_SECONDS', '0'],
    ['SMTP_URL', 'http://mail.example.org'],
    ['MAIL_FROM', 'nobody'],
    ['AUTH_MAX_FAILURES', '0'],
    ['PASSWORD_RESET_TTL_SECONDS', '0'],
    ['PASSWORD_RESET_URL', 'javascript:alert(1)'],
  ])('%s=%s is refused by name', (name, value) => {
    const err = configError({ [name]: value });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toContain(name);
  });

  it('refuses a default page size above the maximum', () => {
    const err = configError({ SEARCH_DEFAULT_COUNT: '200', SEARCH_MAX_COUNT: '100' });
    expect(err.message).toMatch(/SEARCH_DEFAULT_COUNT/);
  });

  it('parses sizes', () => {
    expect(parseSize('16mb')).toBe(16 * 1024 * 1024);
    expect(parseSize('64KB')).toBe(64 * 1024);
    expect(parseSize('1.5gb')).toBe(Math.floor(1.5 * 1024 ** 3));
    expect(parseSize('2048')).toBe(2048);
    expect(parseSize('huge')).toBeUndefined();
    expect(parseSize('5 tb')).toBeUndefined();
  });
});

/** Runs the real entry point and collects its exit code and output. */
const runMain = (env: Record<string, string>) => runEntryPoint('src/main.ts', [], env);

describe('the server process with a bad configuration', () => {
  it('exits with code 2 naming the bad variable, before listening', async () => {
    const { code, stdout, stderr } = await runMain({ PORT: 'abc', MONGODB_URI: FERRET, LOG_LEVEL: 'info' });
    expect({ code, stderr }).toEqual({ code: 2, stderr: expect.stringContaining('PORT') });
    expect(stderr).toContain('"abc"');
    expect(stdout).not.toMatch(/listening/);
  });

  it('names every bad variable in one message', async () => {
    const { code, stderr } = await runMain({ PORT: 'abc', LOG_LEVEL: 'loud', MONGODB_URI: 'http://127.0.0.1:27017/', CORS_ORIGINS: 'notaurl' });
    expect(code).toBe(2);
    for (const name of ['PORT', 'LOG_LEVEL', 'MONGODB_URI', 'CORS_ORIGINS']) expect(stderr).toContain(name);
    expect(stderr).not.toMatch(/\n\s+at\s/); // a message, not a stack trace
  });
});
