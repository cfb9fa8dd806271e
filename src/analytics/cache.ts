import type { KeyValueStore } from '../infra/redis.js';

/** Generation keys outlive every cached answer by far; a counter that expired and restarts finds no entry it could confuse. */
const GENERATION_TTL_MS = 7 * 86_400_000;

/**
 * Computed figures cached for `ttlMs` (five minutes by default) in the KeyValueStore: Redis, shared by every
 * process, or in-process without it. Each scope (an Organization, or `*` for the whole system) has a
 * generation counter that is part of the key; the projection bumps the counters of every organization a
 * changed Appointment, Invoice, payment, Slot, review or role belongs to (and the system's) after it has
 * applied the change, so no process reads an answer computed before it.
 */
export class AnalyticsCache {
  constructor(private readonly kv: KeyValueStore, private readonly namespace: string, private readonly ttlMs: number) {}

  private genKey(scope: string): string {
    return `${this.namespace}:analytics:gen:${scope}`;
  }

  async generation(scope: string): Promise<string> {
    return (await this.kv.get(this.genKey(scope))) ?? '0';
  }

  async invalidate(orgs: Iterable<string>): Promise<void> {
    const scopes = new Set<string>(['*', ...orgs]);
    await Promise.all([...scopes].map((s) => this.kv.incr(this.genKey(s), GENERATION_TTL_MS)));
  }

  /** The cached value for `parts` in `scope`, or `compute()`'s (then cached); `hit` says which. */
  async getOrCompute<T>(scope: string, parts: string[], compute: () => Promise<T>): Promise<{ value: T; hit: boolean }> {
    if (this.ttlMs <= 0) return { value: await compute(), hit: false };
    const key = `${this.namespace}:analytics:v1:${scope}:${await this.generation(scope)}:${parts.join('|')}`;
    const cached = await this.kv.get(key);
    if (cached) return { value: JSON.parse(cached) as T, hit: true };
    const value = await compute();
    await this.kv.set(key, JSON.stringify(value), this.ttlMs);
    return { value, hit: false };
  }
}
