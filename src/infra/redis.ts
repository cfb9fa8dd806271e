import { Redis } from 'ioredis';
import type { Logger } from './logger.js';
import { StartupError, redactUri } from './startup-error.js';
import { fromLuaReply, InProcessLimiter, luaArgs, RATE_LIMIT_LUA, type LimitRule, type LimitState } from './rate-limit-algorithms.js';

/**
 * The small part of Redis the server relies on, so that a process without REDIS_URL
 * can fall back to an in-process store (single process only; logged at start-up).
 */
export interface KeyValueStore {
  readonly kind: 'redis' | 'in-process';
  get(key: string): Promise<string | null>;
  /** Sets a value with a time to live in milliseconds; `onlyIfAbsent` returns false when the key existed. */
  set(key: string, value: string, ttlMs: number, onlyIfAbsent?: boolean): Promise<boolean>;
  /** Increments a counter, starting its time to live on first increment; returns the new value and remaining ttl. */
  incr(key: string, ttlMs: number): Promise<{ value: number; ttlMs: number }>;
  del(key: string): Promise<void>;
  /**
   * Rate limits (http/rate-limit.ts): checks every rule and consumes from all of them only if all allow,
   * atomically. Rejects at once when the store is unreachable (the caller decides to fail open or closed).
   */
  rateLimit(rules: LimitRule[], member: string): Promise<LimitState[]>;
  ping(): Promise<boolean>;
  /** The Redis connection behind the store (none for the in-process store), for modules with scripts of their own. */
  redisClient(): Redis | undefined;
  /** Sends a message to every process subscribed to `channel` (Redis pub/sub; in-process: this store's subscribers). */
  publish(channel: string, message: string): Promise<void>;
  /** Calls `onMessage` for each message on `channel` until the returned function is called. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export async function initRedis(opts: { url?: string; logger: Logger }): Promise<KeyValueStore> {
  if (!opts.url) {
    opts.logger.warn('REDIS_URL is not set: using in-process cache and rate-limit counters (not shared between processes)');
    return new InProcessStore();
  }
  // Auto-pipelining: the commands concurrent requests issue in one tick (cache lookups, rate-limit checks) go in
  // one socket write instead of one each.
  const client = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true, enableAutoPipelining: true });
  let lastError: string | undefined;
  client.on('error', (err) => {
    lastError = err.message;
    opts.logger.warn({ err: err.message }, 'redis connection error');
  });
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    // "Connection is closed" says less than the socket error that closed it.
    const reason = lastError ?? (err instanceof Error ? err.message.split('\n')[0] : String(err));
    throw new StartupError(`Cannot connect to Redis at ${redactUri(opts.url)} (${reason}): start Redis there, or unset REDIS_URL to use in-process fallbacks (one process only).`);
  }
  opts.logger.info('connected to Redis');
  client.defineCommand('medivoyRateLimit', { lua: RATE_LIMIT_LUA });
  return new RedisStore(client);
}

/** Redis is not connected (it went away and the client is reconnecting): the caller fails open or closed at once. */
export class RedisUnavailableError extends Error {
  constructor(status: string) {
    super(`redis is ${status}`);
    this.name = 'RedisUnavailableError';
  }
}

class RedisStore implements KeyValueStore {
  readonly kind = 'redis' as const;
  /** A subscribed Redis connection can only listen, so pub/sub gets a connection of its own, opened on first use. */
  private subscriber?: Redis;
  private readonly handlers = new Map<string, Set<(message: string) => void>>();
  constructor(private readonly client: Redis) {}
  redisClient() {
    return this.client;
  }
  async publish(channel: string, message: string) {
    await this.client.publish(channel, message);
  }
  async subscribe(channel: string, onMessage: (message: string) => void) {
    if (!this.subscriber) {
      this.subscriber = this.client.duplicate({ enableAutoPipelining: false });
      this.subscriber.on('error', () => undefined); // reconnects on its own; the main connection's handler logs
      this.subscriber.on('message', (ch: string, msg: string) => this.handlers.get(ch)?.forEach((h) => h(msg)));
    }
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
      await this.subscriber.subscribe(channel);
    }
    set.add(onMessage);
    return async () => {
      set!.delete(onMessage);
    };
  }
  /**
   * No command waits in the offline queue while Redis is away: a sign-in, an idempotent POST or a rate-limit
   * check must learn at once that Redis is down (the queue holds a command over several reconnection attempts,
   * seconds each), so that each caller fails closed or open without making the client wait.
   */
  private ready(): void {
    if (this.client.status !== 'ready') throw new RedisUnavailableError(this.client.status);
  }
  async get(key: string) {
    this.ready();
    return this.client.get(key);
  }
  async set(key: string, value: string, ttlMs: number, onlyIfAbsent = false) {
    this.ready();
    const res = onlyIfAbsent
      ? await this.client.set(key, value, 'PX', ttlMs, 'NX')
      : await this.client.set(key, value, 'PX', ttlMs);
    return res === 'OK';
  }
  async incr(key: string, ttlMs: number) {
    this.ready();
    const replies = (await this.client.multi().incr(key).pexpire(key, ttlMs, 'NX').pttl(key).exec()) ?? [];
    const value = Number(replies[0]?.[1] ?? 0);
    const ttl = Number(replies[2]?.[1] ?? ttlMs);
    return { value, ttlMs: ttl };
  }
  async del(key: string) {
    this.ready();
    await this.client.del(key);
  }
  async rateLimit(rules: LimitRule[], member: string) {
    // No offline queue for limits: a request must not wait for reconnection attempts to learn its fate.
    this.ready();
    const { keys, args } = luaArgs(rules, member);
    const reply = await (this.client as unknown as { medivoyRateLimit(n: number, ...a: (string | number)[]): Promise<unknown> }).medivoyRateLimit(keys.length, ...keys, ...args);
    return fromLuaReply(rules, reply);
  }
  async ping() {
    try {
      if (this.client.status !== 'ready') return false;
      return (await this.client.ping()) === 'PONG';
    } catch {
      return false;
    }
  }
  async close() {
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

class InProcessStore implements KeyValueStore {
  readonly kind = 'in-process' as const;
  private readonly entries = new Map<string, { value: string; expiresAt: number }>();

  private live(key: string) {
    const e = this.entries.get(key);
    if (e && e.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }
  async get(key: string) {
    return this.live(key)?.value ?? null;
  }
  async set(key: string, value: string, ttlMs: number, onlyIfAbsent = false) {
    if (onlyIfAbsent && this.live(key)) return false;
    this.entries.set(key, { value, expiresAt: Date.now() + ttlMs });
    return true;
  }
  async incr(key: string, ttlMs: number) {
    const e = this.live(key) ?? { value: '0', expiresAt: Date.now() + ttlMs };
    e.value = String(Number(e.value) + 1);
    this.entries.set(key, e);
    return { value: Number(e.value), ttlMs: e.expiresAt - Date.now() };
  }
  async del(key: string) {
    this.entries.delete(key);
  }
  private readonly limiter = new InProcessLimiter();
  async rateLimit(rules: LimitRule[]) {
    return this.limiter.hit(rules);
  }
  async ping() {
    return true;
  }
  redisClient() {
    return undefined;
  }
  private readonly channels = new Map<string, Set<(message: string) => void>>();
  async publish(channel: string, message: string) {
    this.channels.get(channel)?.forEach((h) => h(message));
  }
  async subscribe(channel: string, onMessage: (message: string) => void) {
    const set = this.channels.get(channel) ?? new Set();
    this.channels.set(channel, set);
    set.add(onMessage);
    return async () => {
      set.delete(onMessage);
    };
  }
  async close() {
    this.entries.clear();
    this.channels.clear();
  }
}
