import type { Redis } from 'ioredis';
import type { ResourceCache } from '../fhir/storage/resource-cache.js';
import type { ResourceVersion } from '../fhir/storage/types.js';
import type { Logger } from './logger.js';

/*
 * Keys: `<ns>:rc:gen` the cache generation; `<ns>:rc:<gen>:v:<Type/id>` the cached version (JSON);
 * `<ns>:rc:e:<Type/id>` the key's invalidation epoch; `<ns>:rc:w:<Type/id>` the highest version number stored
 * under the key (by a fill or a write). A read is one script: generation, entry, epoch.
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
if not redis.call('SET', ARGV[1] .. gen .. ':v:' .. ARGV[2], ARGV[5], 'PX', ARGV[6], 'NX') then return 0 end
local mark = ARGV[1] .. 'w:' .. ARGV[2]
if tonumber(ARGV[7]) > tonumber(redis.call('GET', mark) or '0') then redis.call('SET', mark, ARGV[7], 'PX', ARGV[8]) end
return 1`;
/*
 * KEYS: the generation, then one epoch key per cache key. ARGV: value prefix, epoch lifetime, entry lifetime,
 * then per key its name, the version number the write made current ('' for none) and that version (JSON).
 * A key's epoch moves on (fills with older tickets are refused); a written version replaces the entry unless a
 * higher one was already stored (notifications from two processes can arrive out of order); without one
 * the entry is dropped.
 */
const INVALIDATE = `
local gen = redis.call('GET', KEYS[1]) or '0'
for i = 2, #KEYS do
  local name, n, value = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  redis.call('INCR', KEYS[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
  local entry = ARGV[1] .. gen .. ':v:' .. name
  if n == '' then
    redis.call('DEL', entry)
  else
    local mark = ARGV[1] .. 'w:' .. name
    if tonumber(n) > tonumber(redis.call('GET', mark) or '0') then
      redis.call('SET', mark, n, 'PX', ARGV[2])
      redis.call('SET', entry, value, 'PX', ARGV[3])
    end
  end
end
return 1`;

/** The scripts as commands of the connection: sent once, then called by their SHA1 (EVALSHA). */
type Scripted = Redis & Record<'medivoyCacheLookup' | 'medivoyCacheFill' | 'medivoyCacheInvalidate', (numKeys: number, ...args: string[]) => Promise<unknown>>;

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

  private readonly redis: Scripted;

  constructor(redis: Redis, namespace: string, private readonly ttlMs: number, private readonly logger: Logger) {
    redis.defineCommand('medivoyCacheLookup', { lua: LOOKUP });
    redis.defineCommand('medivoyCacheFill', { lua: FILL });
    redis.defineCommand('medivoyCacheInvalidate', { lua: INVALIDATE });
    this.redis = redis as Scripted;
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
      const r = (await this.redis.medivoyCacheLookup(2, this.gen, this.epochPrefix + key, this.valuePrefix, key)) as [string, string | null, string?];
      if (r[1]) return { hit: JSON.parse(r[1]) as ResourceVersion };
      return { ticket: ticketOf(r[0], r[2] ?? '') };
    } catch {
      return { ticket: undefined };
    }
  }

  async fill(key: string, ticket: string | undefined, version: ResourceVersion) {
    if (ticket === undefined || !this.usable) return;
    const [gen, epoch] = ticket.split('/') as [string, string];
    await this.redis.medivoyCacheFill(2, this.gen, this.epochPrefix + key, this.valuePrefix, key, gen, epoch, JSON.stringify(version), String(this.ttlMs), version.versionId, String(this.ttlMs * 2)).catch(() => undefined);
  }

  async invalidate(keys: string[], written?: ReadonlyMap<string, ResourceVersion>) {
    if (!keys.length) return;
    try {
      if (this.redis.status !== 'ready') throw new Error(`redis is ${this.redis.status}`);
      const perKey = keys.flatMap((k) => {
        const v = this.suspect ? undefined : written?.get(k);
        return v ? [k, v.versionId, JSON.stringify(v)] : [k, '', ''];
      });
      await this.redis.medivoyCacheInvalidate(1 + keys.length, this.gen, ...keys.map((k) => this.epochPrefix + k), this.valuePrefix, String(this.ttlMs * 2), String(this.ttlMs), ...perKey);
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
  /** The highest version number stored per key, least recently raised first (evicted from the front). */
  private readonly marks = new Map<string, number>();

  constructor(private readonly ttlMs: number, private readonly maxEntries = 50_000) {}

  async lookup(key: string) {
    const e = this.entries.get(key);
    if (e && e.until > Date.now()) return { hit: e.version };
    if (e) this.entries.delete(key);
    return { ticket: String(this.epochs.get(key) ?? 0) };
  }

  async fill(key: string, ticket: string | undefined, version: ResourceVersion) {
    if (ticket === undefined || String(this.epochs.get(key) ?? 0) !== ticket || this.entries.has(key)) return;
    this.store(key, version);
  }

  async invalidate(keys: string[], written?: ReadonlyMap<string, ResourceVersion>) {
    // Bounded memory: forgetting every epoch and entry at once is safe (older tickets then never match).
    if (this.epochs.size > this.maxEntries * 4) {
      this.epochs.clear();
      this.entries.clear();
    }
    for (const k of keys) {
      this.epochs.set(k, (this.epochs.get(k) ?? 0) + 1);
      const v = written?.get(k);
      if (!v) this.entries.delete(k);
      else if (Number(v.versionId) > (this.marks.get(k) ?? 0)) this.store(k, v);
    }
  }

  private store(key: string, version: ResourceVersion) {
    if (!this.entries.has(key) && this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { version, until: Date.now() + this.ttlMs });
    const n = Number(version.versionId);
    if (n > (this.marks.get(key) ?? 0)) {
      this.marks.delete(key); // re-inserted at the end: the front holds the keys written longest ago
      this.marks.set(key, n);
      if (this.marks.size > this.maxEntries * 4) this.marks.delete(this.marks.keys().next().value!);
    }
  }
}
