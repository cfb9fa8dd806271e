import { createHash } from 'node:crypto';
import type { KeyValueStore } from '../infra/redis.js';
import type { Logger } from '../infra/logger.js';
import type { AccessContext } from './access-policy.js';
import type { ResolvedToken } from './access-tokens.js';

interface Entry {
  access: AccessContext;
  grantId?: string;
  until: number;
}

/** A revocation as broadcast: a token (by its hash) or a whole grant. */
interface Revocation {
  token?: string;
  grantId?: string;
}

/**
 * Who a token belongs to, remembered for a few seconds per process: resolving a token costs two or three
 * database reads (token, grant, account) on every request. A revocation (`/auth/revoke`, a refresh token
 * reused, a grant withdrawn) is broadcast to every process through Redis pub/sub and evicts at once, so a
 * revoked token stops working everywhere within the broadcast's delay; without Redis only this process learns.
 * Changes made behind the server's back (a token row deleted in the database) are seen after `ttlMs`.
 */
export class AccessContextCache {
  private readonly entries = new Map<string, Entry>();
  private unsubscribe?: () => Promise<void>;

  constructor(
    private readonly kv: KeyValueStore,
    private readonly channel: string,
    private readonly ttlMs: number,
    private readonly logger: Logger,
    private readonly maxEntries = 20_000,
  ) {}

  async start(): Promise<void> {
    if (this.ttlMs <= 0) return;
    this.unsubscribe = await this.kv.subscribe(this.channel, (message) => {
      try {
        this.evict(JSON.parse(message) as Revocation);
      } catch {
        this.logger.warn({ channel: this.channel }, 'ignored a malformed revocation message');
      }
    });
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
    this.entries.clear();
  }

  get enabled(): boolean {
    return this.ttlMs > 0;
  }

  get(token: string): AccessContext | undefined {
    const key = hash(token);
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.until <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.access;
  }

  put(resolved: ResolvedToken): void {
    if (!this.enabled) return;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!); // oldest first
    this.entries.set(hash(resolved.token), { access: resolved.access, grantId: resolved.grantId, until: Math.min(Date.now() + this.ttlMs, resolved.expiresAt) });
  }

  /** Forgets a token or a grant here and in every other process. */
  async revoked(r: { token?: string; grantId?: string }): Promise<void> {
    const message: Revocation = { token: r.token ? hash(r.token) : undefined, grantId: r.grantId };
    this.evict(message);
    if (!this.enabled) return;
    await this.kv.publish(this.channel, JSON.stringify(message)).catch((err) => this.logger.warn({ err }, 'could not broadcast a token revocation; other processes forget it within their cache time'));
  }

  private evict(r: Revocation): void {
    if (r.token) this.entries.delete(r.token);
    if (r.grantId) for (const [k, e] of this.entries) if (e.grantId === r.grantId) this.entries.delete(k);
  }
}

const hash = (token: string) => createHash('sha256').update(token).digest('base64url');
