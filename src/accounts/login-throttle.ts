import { createHash } from 'node:crypto';
import { errors } from '../fhir/outcomes.js';
import type { KeyValueStore } from '../infra/redis.js';
import { loginThrottled } from '../infra/metrics.js';

export interface ThrottleLimits {
  /** Failures per account (keyed by the e-mail address, known or not) within the window. */
  maxPerAccount: number;
  /** Failures per client IP within the window. */
  maxPerIp: number;
  windowMs: number;
}

/**
 * Failed-login counters in the KeyValueStore (shared through Redis between instances), following the guide's
 * login flow: 5 failures in 15 minutes lock further attempts with 429 until the window ends, and a success
 * clears the account's counter. The IP counter is not cleared by a success, or one valid account would let an
 * attacker spray guesses at all others from the same address.
 *
 * A lock is its own key whose value is its end (ms since epoch), because the store's `get` reports no TTL and
 * Retry-After must say how long is left.
 */
export class LoginThrottle {
  constructor(
    private readonly kv: KeyValueStore,
    private readonly limits: ThrottleLimits,
  ) {}

  private keys(email: string, ip: string) {
    // Hashed so that e-mail addresses do not appear in Redis.
    const account = createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 32);
    return {
      accountFailures: `auth:fail:acct:${account}`,
      accountLock: `auth:lock:acct:${account}`,
      ipFailures: `auth:fail:ip:${ip}`,
      ipLock: `auth:lock:ip:${ip}`,
    };
  }

  /** Throws 429 with Retry-After while the account or the IP is locked. */
  async check(email: string, ip: string): Promise<void> {
    const k = this.keys(email, ip);
    const [accountLock, ipLock] = await Promise.all([this.kv.get(k.accountLock), this.kv.get(k.ipLock)]);
    const until = Math.max(Number(accountLock ?? 0), Number(ipLock ?? 0));
    const remainingMs = until - Date.now();
    if (remainingMs > 0) {
      loginThrottled.inc({ event: 'refused' });
      throw errors.tooManyRequests('Too many failed sign-in attempts; try again later', Math.max(1, Math.ceil(remainingMs / 1000)));
    }
  }

  /** Counts a failure; the attempt that reaches a limit locks until the end of that counter's window. */
  async failure(email: string, ip: string): Promise<void> {
    const k = this.keys(email, ip);
    const [account, byIp] = await Promise.all([
      this.kv.incr(k.accountFailures, this.limits.windowMs),
      this.kv.incr(k.ipFailures, this.limits.windowMs),
    ]);
    if (account.value >= this.limits.maxPerAccount) await this.lock(k.accountLock, account.ttlMs);
    if (byIp.value >= this.limits.maxPerIp) await this.lock(k.ipLock, byIp.ttlMs);
  }

  async success(email: string, ip: string): Promise<void> {
    const k = this.keys(email, ip);
    await Promise.all([this.kv.del(k.accountFailures), this.kv.del(k.accountLock)]);
  }

  /** Clears the account's counters (after a password reset the owner must be able to sign in at once). */
  async clearAccount(email: string): Promise<void> {
    const k = this.keys(email, '-');
    await Promise.all([this.kv.del(k.accountFailures), this.kv.del(k.accountLock)]);
  }

  private async lock(key: string, ttlMs: number): Promise<void> {
    loginThrottled.inc({ event: 'locked' });
    // A counter without TTL (negative pttl) would otherwise never unlock; fall back to the whole window.
    const ms = ttlMs > 0 ? ttlMs : this.limits.windowMs;
    await this.kv.set(key, String(Date.now() + ms), ms);
  }
}
