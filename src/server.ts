import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import Router from '@koa/router';
import { HttpMethodEnum, koaBody } from 'koa-body';
import type { Config } from './config/config.js';
import type { Logger } from './infra/logger.js';
import { initMongo, type MongoHandle } from './infra/mongo.js';
import { initRedis, type KeyValueStore } from './infra/redis.js';
import { StartupError } from './infra/startup-error.js';
import { errorHandler } from './http/error-handler.js';
import { requestContext } from './http/request-context.js';
import { requestMetrics } from './http/request-metrics.js';
import { metricsRoutes, startMetricsListener } from './http/metrics-endpoint.js';
import { securityHeaders } from './http/security-headers.js';
import { healthRouter } from './health/routes.js';
// --- api docs (imports) ---
import { apiDocsRoutes } from './api-docs/routes.js';
import { smartConfiguration } from './auth/smart-configuration.js';
import { patientCompartment } from './fhir/search/compartment.js';
// --- end api docs ---
// --- accounts (imports) ---
import { initMailer, type Mailer } from './infra/mailer.js';
import { AccountStore } from './accounts/account-store.js';
import { AccountService } from './accounts/account-service.js';
import { accountRoutes } from './accounts/routes.js';
import type { Account } from './accounts/account-store.js';
import { SmartAuth } from './auth/smart-auth.js';
import { LinkCache } from './auth/link-cache.js';
import { AccessContextCache } from './auth/access-context-cache.js';
import { BookingService, bookingWriteRules } from './scheduling/booking.js';
import { PractitionerWrites } from './scheduling/practitioner-writes.js';
import type { AccountDirectory, AccountInfo } from './auth/accounts-port.js';
// --- end accounts ---
// --- notifications, jobs, reviews (imports) ---
import { initJobs, type Jobs } from './jobs/job-runner.js';
import { jobDefinitions } from './jobs/registry.js';
import { NotificationStore } from './notifications/notification-store.js';
import { NotificationService } from './notifications/notification-service.js';
import { Reminders } from './notifications/reminders.js';
import { AppointmentNotices } from './notifications/appointment-notices.js';
import { preferenceRoutes } from './notifications/routes.js';
import { PractitionerRatings } from './reviews/practitioner-rating.js';
// --- end notifications, jobs, reviews ---
// --- insurance, onboarding, prescriptions (imports) ---
import { GuardedRepository } from './write-guards.js';
import { PayerAdapters } from './insurance/payer-adapter.js';
import { LocalRulesAdapter } from './insurance/local-rules-adapter.js';
import { coverageGuard } from './insurance/coverage-guard.js';
import { onboardingGuard } from './onboarding/onboarding-guard.js';
import { prescriptionGuard } from './prescriptions/prescription-guard.js';
// --- end insurance, onboarding, prescriptions ---
// --- billing (imports) ---
import { Billing } from './billing/billing.js';
import { stripeWebhookRoutes } from './billing/webhook-route.js';
import { InvoiceDocumentAccess } from './billing/document-access.js';
// --- end billing ---
// --- rate limits (imports) ---
import { perRequestAccess, rateLimiter } from './http/rate-limit.js';
import type { ClientRateLimit } from './http/client-rate-limit.js';
// --- end rate limits ---
import { fhirEndpoint } from './fhir/rest/koa-adapter.js';
import { dispatch } from './fhir/rest/dispatch.js';
import { serverRoutes } from './fhir/rest/routes.js';
import { OperationRegistry, operationDefinitions } from './fhir/operations/registry.js';
import { businessOperations } from './business-operations.js';
import { runtimeCapabilityStatement } from './fhir/capability.js';
import { Collections } from './fhir/storage/mongo/documents.js';
import { CursorCodec } from './fhir/storage/mongo/cursor.js';
import { answerClientErrors } from './http/client-errors.js';
import { parseJsonBody } from './http/json-body.js';
import { PendingRollbacks } from './fhir/storage/mongo/pending-rollbacks.js';
import { MongoRepository } from './fhir/storage/mongo/mongo-repository.js';
import { SearchParameterRegistry } from './fhir/search/parameters.js';
import { ResourceIndexer } from './fhir/search/indexer.js';
import { SearchEngine } from './fhir/search/engine.js';
import { CustomSearchParameters } from './fhir/search/custom-parameters.js';
import { FerretPostgresIndexes } from './infra/ferretdb-postgres.js';
import { isResourceType, loadDefinitions } from './fhir/definitions.js';
import { validateResource } from './fhir/validation/validate-resource.js';
import { loadProfiles } from './fhir/validation/profiles.js';
import type { FhirRepository } from './fhir/storage/repository.js';
import { SideWriteHooks } from './fhir/storage/side-writes.js';
import { InProcessResourceCache, RedisResourceCache } from './infra/resource-cache.js';
import { Subscriptions } from './subscriptions/service.js';
// --- bulk: begin (imports) ---
import { BulkData } from './bulk/service.js';
import { bulkRoutes } from './bulk/routes.js';
// --- bulk: end ---
// --- analytics (imports) ---
import { AnalyticsProjection } from './analytics/projection.js';
import { FACT_FIELDS, FACTS } from './analytics/facts.js';
import { AnalyticsCache } from './analytics/cache.js';
import { AnalyticsService } from './analytics/analytics-service.js';
import { AnalyticsReports } from './analytics/reports/report-jobs.js';
import { confineReports } from './analytics/reports/report-access.js';
import { ADMIN_CLIENT_ID, ADMIN_SCOPES, adminRoutes } from './analytics/admin-routes.js';
// --- end analytics ---
// --- audit: begin (imports) ---
import { AuditTrail } from './audit/audit-trail.js';
import { retentionJob } from './audit/retention.js';
// --- audit: end ---
import type { CapabilityStatement } from '@medplum/fhirtypes';
import type { Db } from 'mongodb';

export const FHIR_MOUNT = '/fhir';
/**
 * Computes the search index stored beside each resource from the R4 parameters (benchmarks reuse it to
 * write identical documents; the server's own indexer also knows the deployment's custom parameters).
 */
export const searchIndexer = new ResourceIndexer(new SearchParameterRegistry()).index;

/** GIN-indexed fields of FerretDB's tables (see infra/ferretdb-postgres.ts). */
const FERRET_CURRENT_FIELDS = ['_id', 'id', 'tk', 'st'];
const FERRET_HISTORY_FIELDS = ['_id', 'id'];
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface RunningServer {
  server: Server;
  /** Where this instance listens, e.g. http://127.0.0.1:34567 (may differ from the public base URL). */
  url: string;
  mongo: MongoHandle;
  kv: KeyValueStore;
  repo: FhirRepository;
  /** Where the unauthenticated /metrics listener runs (METRICS_LISTEN), if configured. */
  metricsUrl?: string;
  /** Documents modules write with every resource version (audit, subscription outbox): see fhir/storage/side-writes.ts. */
  sideWrites: SideWriteHooks;
  search: SearchEngine;
  customParameters: CustomSearchParameters;
  /** Registration, login checks and password flows (SMART login calls `accounts.authenticate`). */
  accounts: AccountService;
  mailer: Mailer;
  /** The SMART authorization server (client registration, launches, tokens). */
  auth: SmartAuth;
  booking: BookingService;
  /** Durable jobs (jobs/job-runner.ts) and the reminder/notice ports the booking workflow calls. */
  jobs: Jobs;
  reminders: Reminders;
  notifications: NotificationService;
  /** Subscriptions: outbox, fan-out and delivery (src/subscriptions/). */
  subscriptions: Subscriptions;
  // --- bulk: begin ---
  /** Bulk Data $export/$import: jobs, file store (src/bulk/). */
  bulk: BulkData;
  // --- bulk: end ---
  // --- audit: begin ---
  /** The audit trail (src/audit/), absent with AUDIT_ENABLED=false. */
  audit?: AuditTrail;
  // --- audit: end ---
  close(): Promise<void>;
}

/** What the authorization server needs of the accounts module. */
function accountDirectory(accounts: AccountService): AccountDirectory {
  const info = async (a: Account): Promise<AccountInfo> => {
    const person = await accounts.person(a);
    return { id: a._id, kind: a.kind, fhirUser: a.fhirUser, organization: a.organization, name: [person.given, person.family].filter(Boolean).join(' ') || undefined };
  };
  return {
    findById: async (id) => {
      const a = await accounts.findById(id);
      return a ? info(a) : undefined;
    },
    authenticate: async (email, password, ip) => info(await accounts.authenticate(email, password, ip)),
  };
}

/** The repository of a request that needs none (GET /metadata): any use is a programming error. */
const unavailableRepository = new Proxy({} as FhirRepository, {
  get: () => {
    throw new Error('This request has no repository (it was not authorized)');
  },
});

/**
 * The per-type collections with the indexes the engine needs: MongoDB's multikey indexes, or on FerretDB
 * (given its PostgreSQL URL) GIN indexes in its tables. Benchmarks use it too, so their direct-driver
 * baselines write to identically indexed collections.
 */
export function createCollections(db: Db, isFerretDB: boolean, ferretdbPostgresUrl: string | undefined, logger: Logger) {
  let pgIndexes: FerretPostgresIndexes | undefined;
  if (isFerretDB && ferretdbPostgresUrl) {
    pgIndexes = new FerretPostgresIndexes(ferretdbPostgresUrl, db.databaseName, logger);
    logger.info('FerretDB on PostgreSQL: search fields get GIN indexes in its tables');
  } else if (isFerretDB) {
    logger.warn('FerretDB without FERRETDB_POSTGRES_URL: every search reads whole tables; set it to the PostgreSQL database FerretDB uses');
  }
  const gin = pgIndexes;
  const collections = new Collections(
    db,
    !isFerretDB,
    gin
      ? async (c, type) => {
          await gin.ensure(c.currentName(type), FERRET_CURRENT_FIELDS);
          await gin.ensureSortIndexes(c.currentName(type));
          await gin.ensure(c.historyName(type), FERRET_HISTORY_FIELDS);
        }
      : undefined,
  );
  return { collections, pgIndexes };
}

/**
 * Composition root: initializes every resource in order (definitions → MongoDB → Redis → app),
 * starts listening, and closes them in reverse order on `close()` after draining in-flight requests.
 */
export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  const startedAt = new Date();
  loadDefinitions();
  loadProfiles();
  const mongo = await initMongo({ uri: config.mongodbUri, dbName: config.mongodbDb, logger, connectTimeoutMs: config.mongodbConnectTimeoutMs, operationWaitMs: config.mongodbOperationWaitMs });
  let kv: KeyValueStore | undefined;
  let pgIndexes: FerretPostgresIndexes | undefined;
  let custom: CustomSearchParameters | undefined;
  let mailer: Mailer | undefined;
  let holdSweep: NodeJS.Timeout | undefined;
  let jobs: Jobs | undefined;
  let metricsListener: { url: string; close(): Promise<void> } | undefined;
  let accessCache: AccessContextCache | undefined;
  let subscriptions: Subscriptions | undefined;
  let bulkData: BulkData | undefined;
  let billingRef: Billing | undefined;
  let audit: AuditTrail | undefined;
  try {
    const storage = createCollections(mongo.db, mongo.isFerretDB, config.ferretdbPostgresUrl, logger);
    pgIndexes = storage.pgIndexes;
    const cols = storage.collections;
    await cols.ensureExisting();
    kv = await initRedis({ url: config.redisUrl, logger });
    const registry = new SearchParameterRegistry();
    const indexer = new ResourceIndexer(registry).index;
    const cursors = await CursorCodec.forDatabase(mongo.db);
    // Search, read and vread as SQL on FerretDB's PostgreSQL (FERRETDB_SQL_SEARCH; infra/ferretdb-sql.ts).
    const sqlQueries = pgIndexes && config.ferretdbSqlSearch ? pgIndexes.searchQueries() : undefined;
    const engine = new SearchEngine(cols, registry, cursors, {
      defaultCount: config.searchDefaultCount,
      maxCount: config.searchMaxCount,
      maxIncludes: config.searchMaxIncludes,
      maxChainIds: 1000,
      maxExactCount: 10000,
      cursorTtlMs: config.searchCursorTtlMs,
      // On FerretDB an OR of equalities is one query per value, unless the search runs as SQL.
      splitOr: mongo.isFerretDB && !(pgIndexes && config.ferretdbSqlSearch),
      native: sqlQueries,
      defaultTotal: mongo.isFerretDB ? 'none' : 'accurate',
    });
    let repoRef: FhirRepository | undefined;
    custom = new CustomSearchParameters(mongo.db, cols, registry, indexer, () => repoRef!, logger, {
      pollMs: config.reindexPollMs, leaseMs: 30_000, batchSize: config.reindexBatchSize, runJobs: config.reindexWorker,
      idsAfter: pgIndexes ? (collection, after, limit) => pgIndexes!.idsAfter(collection, after, limit) : undefined,
    });
    engine.pendingReindex = (types) => custom!.pendingFor(types);
    const sideWrites = new SideWriteHooks();
    // read/vread from a cache of current versions (Redis, shared; in-process without it), invalidated on write.
    const redis = kv.redisClient();
    const resourceCache = config.resourceCacheMs <= 0 ? undefined
      : redis ? new RedisResourceCache(redis, config.mongodbDb, config.resourceCacheMs, logger) : new InProcessResourceCache(config.resourceCacheMs);
    // --- faults: begin (transaction rollbacks a database outage interrupted are retried until done) ---
    const pendingRollbacks = new PendingRollbacks((err, attempt) => {
      if (attempt % 10 === 0) logger.warn({ reason: err instanceof Error ? err.message.split('\n')[0] : String(err), attempt }, 'undoing an interrupted transaction Bundle failed; retrying');
    });
    // --- faults: end ---
    const storageRepo = new MongoRepository({
      pendingRollbacks,
      sideWrites,
      cache: resourceCache,
      // read and vread by id as SQL on FerretDB's PostgreSQL, with the search (FERRETDB_SQL_SEARCH)
      byId: sqlQueries ? (collection, id) => sqlQueries.byId(collection, id) : undefined,
      client: mongo.client,
      collections: cols,
      supportsTransactions: mongo.supportsTransactions,
      validate: (r) => validateResource(r),
      indexer,
      search: engine,
      onSearchParameterChange: custom.onChange,
      isResourceType,
      cursors,
    });
    // --- audit: begin (a record with every version written, in its unit of work; the server's own writes audited too) ---
    if (config.audit.enabled) {
      audit = new AuditTrail({ collections: cols, indexer, config: config.audit, logger });
      await audit.start();
      sideWrites.add(audit.hook);
    }
    const repo: FhirRepository = audit ? audit.system(storageRepo) : storageRepo;
    // --- audit: end ---
    repoRef = repo;
    await custom.start();

    let started = false;
    const app = new Koa({ proxy: true });
    // The public base is known only once listening when BASE_URL is unset (e.g. PORT=0 in tests).
    let publicBase = config.baseUrl ?? '';
    let capability: CapabilityStatement | undefined;
    app.use(requestContext(logger));
    app.use(requestMetrics());
    app.use(errorHandler(logger));
    app.use(securityHeaders({ origins: config.corsOrigins }));
    const health = healthRouter({
      version: VERSION,
      environment: config.nodeEnv,
      startedAt,
      checks: {
        mongodb: async () => (await mongo.db.command({ ping: 1 })).ok === 1,
        redis: () => kv!.ping(),
      },
      started: () => started,
      // --- faults: begin ---
      pending: () => (pendingRollbacks.count ? [`${pendingRollbacks.count} transaction Bundle(s) interrupted by a database outage are still being undone`] : []),
      // --- faults: end ---
    });
    app.use(health.routes());
    // --- audit: begin (one record per FHIR request; 503 while the audit store fails) ---
    if (audit) app.use(audit.middleware(FHIR_MOUNT));
    // --- audit: end ---
    // --- api docs: begin (/openapi.json from the CapabilityStatement and the registry, /api-docs; no token needed) ---
    app.use(apiDocsRoutes({
      sources: () => (capability ? { capability, operations: operations.list(), smart: smartConfiguration(auth.issuer), compartmentTypes: [...patientCompartment().keys()] } : undefined),
    }).routes());
    // --- api docs: end ---
    // --- analytics: begin (/admin dashboard pages; no token needed for the pages, the API calls carry the user's) ---
    app.use(adminRoutes({ fhirBase: () => `${publicBase}${FHIR_MOUNT}`, issuer: () => auth.issuer, apiOrigins: () => [new URL(publicBase).origin] }).routes());
    // --- analytics: end ---
    // /metrics: on the main port for a token with the metrics scope; unauthenticated on METRICS_LISTEN if set.
    app.use(metricsRoutes((authorization) => auth.accessContext(authorization)).routes());
    if (config.metricsListen) metricsListener = await startMetricsListener(config.metricsListen);
    // --- rate limits: begin (per client, user and IP; before every /auth and /fhir route) ---
    const accessOnce = perRequestAccess((authorization) => auth.accessContext(authorization));
    app.use(rateLimiter({
      store: kv, limits: config.rateLimits, namespace: config.mongodbDb, logger,
      identify: (ctx) => accessOnce(ctx.headers),
      clientLimit: async (id) => ((await auth.oidc.Client.find(id)) as unknown as { rate_limit?: ClientRateLimit } | undefined)?.rate_limit,
    }));
    // --- rate limits: end ---
    // --- accounts: begin (registration and passwords under /auth, mounted before the FHIR router) ---
    mailer = await initMailer({ url: config.smtpUrl, from: config.mailFrom, logger, logBodies: config.nodeEnv !== 'production' });
    const accountStore = new AccountStore(mongo.db);
    await accountStore.init();
    const accounts = new AccountService({
      store: accountStore, repo, kv, mailer, logger,
      limits: { maxPerAccount: config.authMaxFailures, maxPerIp: config.authMaxFailuresPerIp, windowMs: config.authLockoutMs },
      passwordResetTtlMs: config.passwordResetTtlMs,
      passwordResetUrl: config.passwordResetUrl,
    });
    // SMART authorization server: discovery, /auth endpoints and pages; FHIR requests get a scoped repository.
    const directory = audit ? audit.signIns(accountDirectory(accounts)) : accountDirectory(accounts); // --- audit: sign-ins ---
    const auth = new SmartAuth({ db: mongo.db, repo, indexer, accounts: directory, logger, allowLoopbackFetch: config.nodeEnv === 'test' });
    // Token lookups cached per process for ACCESS_CACHE_SECONDS; revocations broadcast through Redis.
    accessCache = new AccessContextCache(kv, `${config.mongodbDb}:token-revocations`, config.accessCacheMs, logger);
    await accessCache.start();
    auth.accessCache = accessCache;
    // A practitioner's or administrator's link to a patient, once found, is remembered as long as a token's caller.
    auth.linkCache = new LinkCache(config.accessCacheMs);
    app.use(
      accountRoutes(accounts, {
        // A signed-in user changes their password with their access token.
        authenticateRequest: async (ctx) => {
          if (!ctx.get('authorization')) return undefined;
          const access = await auth.accessContext(ctx.get('authorization'));
          return access.accountId ? accounts.findById(access.accountId) : undefined;
        },
      }).routes(),
    );
    // --- accounts: end ---
    for (const middleware of auth.routes(FHIR_MOUNT)) app.use(middleware);
    // Scheduling: booking decisions by slot claims; plain Appointment writes follow the same rules.
    const booking = new BookingService(mongo.db, repo, { holdMs: config.holdMs, horizonDays: config.bookingHorizonDays, cancelCutoffMs: config.cancellationCutoffMs });
    auth.writeRules = (access) => bookingWriteRules(booking, access);
    holdSweep = setInterval(() => void booking.releaseLapsedHolds().catch((err) => logger.warn({ err }, 'releasing lapsed holds failed')), Math.min(config.holdMs, 30_000));
    holdSweep.unref();
    // --- scheduling/practitioners: begin ---
    // Practitioner onboarding rules (roles pending until $verify, licences unique per issuer) wrap every request's
    // scoped repository, so REST, Bundles and operations cannot skip them; the ports serve $verify/$generate-slots.
    auth.decorate = (scoped, access) => new PractitionerWrites(scoped, access, { system: repo, notify: (to, mail) => accounts.notify(to, mail) });
    // --- scheduling/practitioners: end ---
    // --- subscriptions: begin (outbox hook on every write; Subscription writes checked and owned; loops start once listening) ---
    const subs = (subscriptions = new Subscriptions({
      db: mongo.db, repo, sideWrites, registry, indexer, mailer, emailAvailable: !!config.smtpUrl, links: auth.linkCache, logger,
      baseUrl: () => `${publicBase}${FHIR_MOUNT}`, config: config.subscriptions,
    }));
    const practitionerDecorate = auth.decorate;
    // Inside the practitioner rules: business operations find their ports on the outermost repository.
    auth.decorate = (scoped, access) => (practitionerDecorate ? practitionerDecorate(subs.decorate(scoped, access), access) : subs.decorate(scoped, access));
    // --- subscriptions: end ---
    // --- bulk: begin (tasks run on the job queue as the caller who kicked them off; files in GridFS or a directory) ---
    const bulk = (bulkData = new BulkData({
      db: mongo.db, config: config.bulk, logger,
      repositoryFor: (access) => auth.repositoryFor(access),
      auditSlice: audit ? (r, access, operation, requestId) => audit!.job(r, access, operation, requestId) : undefined, // --- audit ---
      accessContext: (authorization) => auth.accessContext(authorization),
      baseUrl: () => `${publicBase}${FHIR_MOUNT}`,
    }));
    await bulk.init();
    // --- bulk: end ---
    // --- analytics: begin (projection kept by a change log written with every version; figures cached per scope) ---
    const analyticsProjection = new AnalyticsProjection(mongo.db, repo, (orgs) => analyticsCache.invalidate(orgs));
    const analyticsCache = new AnalyticsCache(kv, config.mongodbDb, config.analytics.cacheMs);
    await analyticsProjection.init();
    // On FerretDB the partition keys' equalities become GIN index lookups in its PostgreSQL table.
    await pgIndexes?.ensure(FACTS, ['km', 'kom', 'kind']);
    // FERRETDB_SQL_ANALYTICS: each pass is one SQL statement on the facts' table, its months' keys and time
    // range answered by a btree on (key, ms); the pipelines through FerretDB otherwise.
    const analyticsNative = pgIndexes && config.ferretdbSqlAnalytics ? pgIndexes.aggregation(FACTS, FACT_FIELDS) : undefined;
    if (analyticsNative) await pgIndexes!.ensureRangeIndexes(FACTS, [['km', 'ms'], ['kom', 'ms']]);
    // The first start on a database projects what is already stored (one process does it).
    await analyticsProjection.rebuildOnce((n) => logger.info({ resources: n }, 'analytics projection built from the stored resources'));
    sideWrites.add(analyticsProjection.hook);
    const analytics = new AnalyticsService({ projection: analyticsProjection, cache: analyticsCache, system: repo, config: config.analytics, native: analyticsNative });
    // Reports are jobs on the job runner; their Binary/DocumentReference read only for who may see the figures.
    const analyticsReports = new AnalyticsReports({ db: mongo.db, system: repo, analytics: () => analytics, jobs: () => jobs!, logger, baseUrl: () => `${publicBase}${FHIR_MOUNT}` });
    const reportDecorate = auth.decorate;
    // Inside the other rules (as every decorator here): business operations find their ports on the outermost one.
    auth.decorate = (scoped, access) => (reportDecorate ? reportDecorate(confineReports(scoped, access), access) : confineReports(scoped, access));
    // --- analytics: end ---
    // --- notifications, jobs, reviews: begin ---
    // Notices go out on the channels each user chose (preferences at /auth/preferences); reminders, booking
    // notices and no-show marking run as durable jobs in any process, each once (jobs/job-runner.ts says why not agenda). Jobs and the rating recompute
    // use the server's repository: they act for the organization, not for a caller.
    const notificationStore = new NotificationStore(mongo.db, config.jobsLeaseMs);
    await notificationStore.init();
    const notifications = new NotificationService({ repo, mailer, store: notificationStore, logger });
    jobs = await initJobs({
      db: mongo.db, logger, enabled: config.jobsEnabled, pollMs: config.jobsPollMs, lockLifetimeMs: config.jobsLeaseMs,
      definitions: jobDefinitions({ repo, notifications, logger, noShowGraceMinutes: config.noShowGraceMinutes, noShowEveryMs: 5 * 60_000 }, [
        ...bulk.jobDefinitions(),
        analyticsReports.job(),
        // --- audit: begin ---
        ...(audit && config.audit.retentionDays > 0
          ? [retentionJob({ db: mongo.db, collection: () => audit!.store.collection, days: config.audit.retentionDays, dir: config.audit.archiveDir, everyMs: config.audit.retentionEveryMs, logger })]
          : []),
        // --- audit: end ---
      ]),
    });
    bulk.jobs = jobs; // --- bulk ---
    const reminders = new Reminders({ jobs, offsetsMs: config.reminderOffsetsMs });
    booking.hooks = new AppointmentNotices({ jobs, reminders }).hooks(logger);
    app.use(preferenceRoutes(notificationStore, {
      unavailable: ['sms', 'push'],
      authenticate: async (ctx) => (ctx.get('authorization') ? auth.accessContext(ctx.get('authorization')) : undefined),
    }).routes());
    const ratings = new PractitionerRatings({ repo, logger });
    await ratings.ensureDefinitions(config.ratingSearchParameter);
    // --- notifications, jobs, reviews: end ---
    // --- insurance, onboarding, prescriptions: begin ---
    // Coverage checks, BMI and onboarding notices, prescription rules: inside the practitioner rules, around the
    // caller's scoped repository, so REST, Bundles and operations all go through them (write-guards.ts).
    const guards = [coverageGuard({ system: repo }), onboardingGuard({ system: repo, jobs }), prescriptionGuard({ system: repo, jobs })];
    const innerDecorate = auth.decorate;
    auth.decorate = (scoped, access) => innerDecorate!(new GuardedRepository(scoped, access, guards), access);
    const payers = new PayerAdapters([new LocalRulesAdapter()]);
    // --- insurance, onboarding, prescriptions: end ---
    // --- billing: begin ---
    // Invoices for held and booked appointments, payments (Stripe), refunds on cancellation. Booking calls billing
    // through its hooks and gate (a held appointment with a fee is booked once paid); billing books and releases
    // holds through this port, so neither module imports the other.
    const billing = (billingRef = new Billing({ db: mongo.db, system: repo, mailer, logger }, config.stripe));
    const billingCaller = { repo, access: { clientId: 'medivoy-billing', scopes: [] } };
    await billing.init({
      bookHeld: (ref) => booking.book(billingCaller, { appointment: ref }),
      cancel: (ref, reason) => booking.transition('system', ref, 'cancel', reason),
    });
    const notices = booking.hooks;
    const charges = billing.hooks();
    booking.hooks = {
      booked: async (a) => { await notices.booked?.(a).catch(() => undefined); await charges.booked(a); },
      cancelled: async (a) => { await notices.cancelled?.(a).catch(() => undefined); await charges.cancelled(a); },
      rescheduled: notices.rescheduled,
      held: async (a) => { await notices.held?.(a).catch(() => undefined); await charges.held(a); },
    };
    booking.gate = charges;
    // Invoice PDFs (Binary with an Invoice as securityContext) are read only by who may read the Invoice.
    const beforeBilling = auth.decorate;
    auth.decorate = (scoped, access) => (beforeBilling ? beforeBilling(new InvoiceDocumentAccess(scoped, access), access) : new InvoiceDocumentAccess(scoped, access));
    app.use(stripeWebhookRoutes(() => billing).routes());
    // --- billing: end ---
    // Business operations register themselves (each module's own list); the REST layer serves them and the
    // CapabilityStatement and OperationDefinitions describe them from the same registry.
    const operations = new OperationRegistry().register(
      ...businessOperations({ booking, ratings, payers, system: repo, subscriptions: subs, bulk, billing, analytics, analyticsReports }),
    );
    const fhirRoutes = serverRoutes(operations.list());
    await publishOperationDefinitions(repo, operations);
    const fhir = new Router({ prefix: FHIR_MOUNT });
    const endpoint = fhirEndpoint({
      mountPath: FHIR_MOUNT,
      publicBaseUrl: () => publicBase,
      idempotency: { kv, ttlMs: config.idempotencyTtlMs },
      maxFormBytes: config.maxBodySize,
      authorize: async (req) => {
        const access = await accessOnce(req.headers); // the rate limiter may have looked it up already
        const scoped = auth.repositoryFor(access);
        return { repo: audit ? audit.repository(scoped, access, req.headers) : scoped, access }; // --- audit: the request's record ---
      },
      // Only GET /metadata runs without a scoped repository, and it reads none.
      context: (ctx, caller) => ({
        repo: caller?.repo ?? unavailableRepository,
        access: caller?.access,
        routes: fhirRoutes,
        searchDefaultCount: config.searchDefaultCount,
        searchMaxCount: config.searchMaxCount,
        maxBundleEntries: config.maxBundleEntries,
        capabilityStatement: () => capability!,
        dispatch,
        onUnexpectedError: (err) => logger.error({ err, requestId: ctx.state.requestId }, 'bundle entry failed'),
      }),
    });
    // --- faults: begin (JSON bodies read as text, then parsed with a nesting limit: see http/json-body.ts) ---
    const body = koaBody({
      json: false,
      urlencoded: false,
      text: true,
      textLimit: config.maxBodySize,
      textTypes: ['application/json', 'application/fhir+json', 'application/json-patch+json'],
      multipart: false,
      parsedMethods: [HttpMethodEnum.POST, HttpMethodEnum.PUT, HttpMethodEnum.PATCH],
    });
    // --- faults: end ---
    // --- bulk: begin (status and file endpoints, before the FHIR router) ---
    app.use(bulkRoutes(bulk, FHIR_MOUNT).routes());
    // --- bulk: end ---
    // --- faults: begin ---
    fhir.all(['/', '/{*rest}'], body, parseJsonBody(), endpoint);
    // --- faults: end ---
    app.use(fhir.routes());

    const server = app.listen(config.port, config.host);
    // --- faults: begin (what Node's HTTP parser refuses gets an OperationOutcome too) ---
    answerClientErrors(server);
    // --- faults: end ---
    await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') throw new StartupError(`Port ${config.port} on ${config.host} is already in use: stop the other process or set PORT to a free port.`);
      if (err.code === 'EACCES') throw new StartupError(`Not allowed to listen on port ${config.port} on ${config.host}: use a port above 1023 or set HOST/PORT.`);
      throw err;
    });
    const addr = server.address() as AddressInfo;
    const url = `http://${addr.address === '0.0.0.0' || addr.address === '::' ? '127.0.0.1' : addr.address}:${addr.port}`;
    if (!config.baseUrl) publicBase = `http://${config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : addr.address}:${addr.port}`;
    app.keys = await auth.start(publicBase, FHIR_MOUNT); // the provider's cookies are the mounting app's
    // --- audit: begin ---
    audit?.setSite(`${publicBase}${FHIR_MOUNT}`);
    audit?.watchAuthorizationServer(auth.oidc);
    // --- audit: end ---
    capability = runtimeCapabilityStatement({ baseUrl: `${publicBase}${FHIR_MOUNT}`, version: VERSION, startedAt, issuer: auth.issuer });
    await subs.start();
    // --- analytics: begin (the dashboard's public SMART client, registered again at every start for the current BASE_URL) ---
    await auth.registerClient({ kind: 'public', client_id: ADMIN_CLIENT_ID, client_name: 'Medivoy administration', redirect_uris: [`${publicBase}/admin/`], allowed_scopes: ADMIN_SCOPES });
    // --- analytics: end ---
    started = true;
    // `runtime` tells an operator whether this is the compiled build (npm start) or the TypeScript sources (npm run dev).
    const runtime = import.meta.url.endsWith('.js') ? 'compiled' : 'source';
    logger.info({ url, baseUrl: publicBase, engine: mongo.engine, transactions: mongo.supportsTransactions, kv: kv.kind, runtime }, 'Medivoy is listening');

    const store = kv;
    const mail = mailer;
    return {
      server, url, metricsUrl: metricsListener?.url, mongo, kv: store, repo, sideWrites, search: engine, customParameters: custom!, accounts, mailer: mail, auth, booking, jobs, reminders, notifications, subscriptions: subs, audit, bulk,
      async close() {
        clearInterval(holdSweep);
        billingRef?.stop();
        await drain(server, config.shutdownTimeoutMs);
        pendingRollbacks.close();
        await subs.stop();
        await metricsListener?.close();
        await accessCache?.stop();
        bulk.stop(); // --- bulk: running slices checkpoint and hand their task back ---
        await jobs!.close(config.shutdownTimeoutMs); // running jobs finish while mail and MongoDB are still open
        await accounts.idle(); // e-mails of the last requests
        await audit?.close(); // --- audit: the last write-behind records ---
        await mail.close();
        await custom?.stop();
        await pgIndexes?.close();
        await store.close();
        await mongo.close();
      },
    };
  } catch (err) {
    clearInterval(holdSweep);
    billingRef?.stop();
    await subscriptions?.stop().catch(() => undefined);
    await metricsListener?.close().catch(() => undefined);
    bulkData?.stop();
    await jobs?.close(1000).catch(() => undefined);
    await audit?.close().catch(() => undefined);
    await mailer?.close().catch(() => undefined);
    await custom?.stop().catch(() => undefined);
    await pgIndexes?.close().catch(() => undefined);
    await kv?.close().catch(() => undefined);
    await mongo.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Stores the OperationDefinition of every registered operation, so the canonicals the CapabilityStatement
 * names can be read (`GET /fhir/OperationDefinition/Appointment-book`). An unchanged definition writes no
 * new version, so restarts leave their history alone.
 */
async function publishOperationDefinitions(repo: FhirRepository, registry: OperationRegistry): Promise<void> {
  const defs = registry.list().filter((op) => !op.canonical).flatMap(operationDefinitions);
  await repo.transaction(async (tx) => {
    for (const def of defs) await tx.update(def);
  });
}

/** Stops accepting connections and waits for in-flight requests, forcing idle and then all sockets closed. */
async function drain(server: Server, timeoutMs: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.closeAllConnections();
      resolve();
    }, timeoutMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
