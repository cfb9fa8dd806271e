import type { Redis } from 'ioredis';
import type { ResourceCache } from '../fhir/storage/resource-cache.js';
import type { ResourceVersion } from '../fhir/storage/types.js';
import type { Logger } from './logger.js';

/*
 * Keys: `<ns>:rc:gen` the cache generation; `<ns>:rc:<gen>:v:<Type/id>` the cached version (JSON);
 * `<ns>:rc:e:<Type/id>` the key's invalidation epoch. A read is one script: generation, entry, epoch.
 */
const LOOKUP = `
local gen = redis.call('GET', KEYS[1]) or '0'
local v = redis.call('GET', ARGV[1] .. gen .. ':v:' .. ARGV[2])
if v then return {gen, v} end
return {gen, false, redis.call('GET', KEYS[2]) or ''}`;
const FILL = `
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[3] then return 0 end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[4] then return 0 end
redis.call('SET', ARGV[1] .. gen .. ':v:' .. ARGV[2], ARGV[5], 'PX', ARGV[6], 'NX')
return 1`;
const INVALIDATE = `
local gen = redis.call('GET', KEYS[1]) or '0'
for i = 2, #KEYS do
  redis.call('INCR', KEYS[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
  redis.call('DEL', ARGV[1] .. gen .. ':v:' .. ARGV[2 + i - 1])
end
return 1`;

/** Tickets carry the generation too: a fill after a generation change is dropped. */
const ticketOf = (gen: string, epoch: string) => `${gen}/${epoch}`;

/**
 * The resource cache in Redis, shared by every process. After an invalidation that failed (Redis unreachable
 * while a write committed), this process stops using the cache and, once Redis answers again, moves every
 * process to a new generation so that no entry older than that write can be read; it then resumes.
 */
export class RedisResourceCache implements ResourceCache {
  private suspect = false;
  private readonly gen: string;
  private readonly epochPrefix: string;
  private readonly valuePrefix: string;

  constructor(private readonly redis: Redis, namespace: string, private readonly ttlMs: number, private readonly logger: Logger) {
    this.gen = `${namespace}:rc:gen`;
    this.epochPrefix = `${namespace}:rc:e:`;
    this.valuePrefix = `${namespace}:rc:`;
  }

  private get usable(): boolean {
    return !this.suspect && this.redis.status === 'ready';
  }

  async lookup(key: string) {
    if (!this.usable) return { ticket: undefined };
    try {
      const r = (await this.redis.eval(LOOKUP, 2, this.gen, this.epochPrefix + key, this.valuePrefix, key)) as [string, string | null, string?];
      if (r[1]) return { hit: JSON.parse(r[1]) as ResourceVersion };
      return { ticket: ticketOf(r[0], r[2] ?? '') };
    } catch {
      return { ticket: undefined };
    }
  }

  async fill(key: string, ticket: string | undefined, version: ResourceVersion) {
    if (ticket === undefined || !this.usable) return;
    const [gen, epoch] = ticket.split('/') as [string, string];
    await this.redis.eval(FILL, 2, this.gen, this.epochPrefix + key, this.valuePrefix, key, gen, epoch, JSON.stringify(version), String(this.ttlMs)).catch(() => undefined);
  }

  async invalidate(keys: string[]) {
    if (!keys.length) return;
    try {
      if (this.redis.status !== 'ready') throw new Error(`redis is ${this.redis.status}`);
      await this.redis.eval(INVALIDATE, 1 + keys.length, this.gen, ...keys.map((k) => this.epochPrefix + k), this.valuePrefix, String(this.ttlMs * 2), ...keys);
    } catch (err) {
      if (!this.suspect) this.logger.warn({ err: (err as Error).message }, 'resource cache: an invalidation failed; reading from the database until the cache generation is renewed');
      this.suspect = true;
      void this.renew();
    }
  }

  /** Makes every entry written before now unreachable (a new generation), retrying until Redis answers. */
  private async renew(): Promise<void> {
    for (let attempt = 0; this.suspect; attempt++) {
      try {
        if (this.redis.status === 'ready') {
          await this.redis.incr(this.gen);
          this.suspect = false;
          this.logger.info('resource cache: new generation; cached reads resume');
          return;
        }
      } catch {
        // still down
      }
      await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** attempt)).unref());
    }
  }
}

/** The same protocol inside one process (no REDIS_URL): a map with expiry. */
export class InProcessResourceCache implements ResourceCache {
  private readonly entries = new Map<string, { version: ResourceVersion; until: number }>();
  private readonly epochs = new Map<string, number>();

  constructor(private readonly ttlMs: number, private readonly maxEntries = 50_000) {}

  async lookup(key: string) {
    const e = this.entries.get(key);
    if (e && e.until > Date.now()) return { hit: e.version };
    if (e) this.entries.delete(key);
    return { ticket: String(this.epochs.get(key) ?? 0) };
  }

  async fill(key: string, ticket: string | undefined, version: ResourceVersion) {
    if (ticket === undefined || String(this.epochs.get(key) ?? 0) !== ticket || this.entries.has(key)) return;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { version, until: Date.now() + this.ttlMs });
  }

  async invalidate(keys: string[]) {
    // Bounded memory: forgetting every epoch and entry at once is safe (older tickets then never match).
    if (this.epochs.size > this.maxEntries * 4) {
      this.epochs.clear();
      this.entries.clear();
    }
    for (const k of keys) {
      this.epochs.set(k, (this.epochs.get(k) ?? 0) + 1);
      this.entries.delete(k);
    }
  }
}
