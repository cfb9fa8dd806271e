import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Db } from 'mongodb';
import type { Logger } from '../infra/logger.js';
import type { Mailer } from '../infra/mailer.js';
import type { AccessContext } from '../auth/access-policy.js';
import type { LinkCache } from '../auth/link-cache.js';
import type { Indexer } from '../fhir/search/index-entry.js';
import type { SearchParameterRegistry } from '../fhir/search/parameters.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { SideWriteHooks } from '../fhir/storage/side-writes.js';
import { Delivery } from './delivery.js';
import { SubscriptionDirectory } from './directory.js';
import { EndpointPolicy } from './endpoint-policy.js';
import { Fanout } from './fanout.js';
import { SlotLeases, SubscriptionStore } from './store.js';
import { SubscriptionWrites } from './subscription-writes.js';
import { WatchedTypes } from './watched-types.js';

export interface SubscriptionConfig {
  /** Run the fan-out and delivery loops in this process (any number of processes may). */
  enabled: boolean;
  endpointAllowlist: string[];
  retryMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  pollMs: number;
  leaseMs: number;
  defaultTimeoutSeconds: number;
  /** How long after its write a subscription takes effect (every process re-reads the watched types well within it). */
  propagationMs: number;
}

export interface SubscriptionDeps {
  db: Db;
  /** The server's own repository (no caller scope). */
  repo: FhirRepository;
  sideWrites: SideWriteHooks;
  registry: SearchParameterRegistry;
  indexer: Indexer;
  mailer: Mailer;
  emailAvailable: boolean;
  links?: LinkCache;
  logger: Logger;
  baseUrl: () => string;
  config: SubscriptionConfig;
}

/**
 * Subscriptions: the outbox hook on every write, the rules on Subscription writes, and the two loops every
 * process runs — fan-out (one process at a time) and delivery (one process per subscription at a time).
 */
export class Subscriptions {
  readonly store: SubscriptionStore;
  readonly directory: SubscriptionDirectory;
  readonly policy: EndpointPolicy;
  readonly fanout: Fanout;
  readonly delivery: Delivery;
  private timer?: NodeJS.Timeout;
  private fanoutRun?: Promise<void>;
  private deliveryRun?: Promise<void>;
  private stopped = false;
  private lastSweep = Date.now();
  private readonly leases: SlotLeases;
  readonly watched: WatchedTypes;
  private refreshTimer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;

  constructor(private readonly d: SubscriptionDeps) {
    const c = d.config;
    this.store = new SubscriptionStore(d.db);
    this.policy = new EndpointPolicy(c.endpointAllowlist);
    this.directory = new SubscriptionDirectory(d.repo, d.registry, { baseUrl: () => d.baseUrl(), maxTimeoutSeconds: Math.max(1, Math.min(120, Math.floor((c.leaseMs - 4_000) / 2_000))), defaultTimeoutSeconds: c.defaultTimeoutSeconds }, d.logger);
    const owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const leases = (this.leases = new SlotLeases(this.store.leases, owner, c.leaseMs));
    this.fanout = new Fanout({ store: this.store, repo: d.repo, indexer: d.indexer, directory: this.directory, leases, logger: d.logger, links: d.links, orphanAfterMs: 60_000, batch: 200 });
    this.delivery = new Delivery({
      store: this.store, repo: d.repo, directory: this.directory, leases, mailer: d.mailer, policy: this.policy, logger: d.logger,
      baseUrl: () => `${d.baseUrl()}`, retryMs: c.retryMs, backoffBaseMs: c.backoffBaseMs, backoffMaxMs: c.backoffMaxMs,
    });
    // P leaves room for slow reads under load: a process whose last read began longer ago writes entries for all types.
    this.watched = new WatchedTypes(c.propagationMs);
    d.sideWrites.add(this.store.hook((type) => this.watched.covers(type)));
  }

  /** Wraps a request's repository so Subscription writes are checked and owned (see subscription-writes.ts). */
  decorate(repo: FhirRepository, access: AccessContext): FhirRepository {
    return new SubscriptionWrites(repo, access, { directory: this.directory, policy: this.policy, emailAvailable: this.d.emailAvailable, watched: this.watched });
  }

  async start(): Promise<void> {
    await this.store.init();
    await this.refresh();
    // Every process keeps its watched types current, workers or not (its writes depend on them).
    this.refreshTimer = setInterval(() => void this.refresh(), this.d.config.pollMs);
    this.refreshTimer.unref();
    if (!this.d.config.enabled) return;
    this.timer = setInterval(() => this.tick(), this.d.config.pollMs);
    this.timer.unref();
  }

  private refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      const startedAt = Date.now();
      const subs = await this.directory.active();
      this.watched.set(subs.map((s) => s.resourceType), startedAt);
    })()
      .catch((err) => this.d.logger.warn({ err }, 'reading the active subscriptions failed; every write gets an outbox entry meanwhile'))
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** Fan-out and delivery run side by side, each never overlapping itself. */
  private tick(): void {
    if (this.stopped) return;
    this.fanoutRun ??= (async () => {
      if (Date.now() - this.lastSweep > 10 * this.d.config.leaseMs) {
        this.lastSweep = Date.now();
        await this.leases.sweep();
      }
      while (!this.stopped && (await this.fanout.runOnce()) > 0) { /* drain the outbox while there is work */ }
    })()
      .catch((err) => this.d.logger.error({ err }, 'subscription fan-out failed; will retry'))
      .finally(() => (this.fanoutRun = undefined));
    this.deliveryRun ??= this.delivery.runOnce()
      .catch((err) => this.d.logger.error({ err }, 'subscription delivery loop failed; will retry'))
      .finally(() => (this.deliveryRun = undefined));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.refreshTimer);
    await this.refreshing;
    await Promise.allSettled([this.fanoutRun, this.deliveryRun]);
    await this.delivery.idle();
    await this.leases.releaseAll().catch((err) => this.d.logger.warn({ err }, 'releasing subscription leases failed; they expire with their slot'));
  }
}
