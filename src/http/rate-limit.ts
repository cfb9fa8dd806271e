import { randomBytes } from 'node:crypto';
import type { Context, Middleware, Next } from 'koa';
import type { Config } from '../config/config.js';
import { outcome, issue, OperationOutcomeError, errors } from '../fhir/outcomes.js';
import type { Logger } from '../infra/logger.js';
import type { KeyValueStore } from '../infra/redis.js';
import type { LimitRule, LimitState } from '../infra/rate-limit-algorithms.js';
import type { ClientRateLimit } from './client-rate-limit.js';

export interface RateLimiterOptions {
  store: KeyValueStore;
  limits: Config['rateLimits'];
  /** Separates deployments sharing one Redis (the database name: processes of one deployment share it). */
  namespace: string;
  logger: Logger;
  /** Who sends a request with a bearer token (undefined for a bad token: the endpoint answers 401 itself). */
  identify: (ctx: Context) => Promise<{ clientId: string; accountId?: string } | undefined>;
  /** A client's own limit from its registration. */
  clientLimit: (clientId: string) => Promise<ClientRateLimit | undefined>;
}

/** Requests that present credentials: limited per IP apart from other requests, and refused when the store is down. */
const SIGN_IN = /^\/auth\/(token|register|password\/[a-z-]+|interaction\/[^/]+\/login)$/;
const CLIENT_CACHE_MS = 30_000;
const STORE_DOWN_RETRY_SECONDS = 10;

/**
 * Request rate limits per client, per user and per IP, on top of the failed-login lockout
 * (accounts/login-throttle.ts). Counts live in the key-value store, so with Redis every server process shares
 * them; without Redis each process counts alone (logged at start). A request is counted against every limit
 * that applies and refused (429, OperationOutcome `throttled`, `Retry-After`) if any is spent; every limited
 * response carries `RateLimit-Limit`/`-Remaining`/`-Reset` of the tightest limit (IETF draft, delta seconds).
 *
 * When the store cannot be reached, sign-in requests fail closed (503: brute-force protection must not lapse)
 * and all other requests fail open (served and logged: a cache outage must not become an API outage).
 */
export function rateLimiter(o: RateLimiterOptions): Middleware {
  const l = o.limits;
  if (o.store.kind === 'in-process') {
    o.logger.warn('rate limits are counted in this process only (no REDIS_URL): every server process allows the full limits');
  }
  o.logger.info({ ...l, store: o.store.kind }, 'rate limits');
  const clients = new Map<string, { rule?: ClientRateLimit; until: number }>();
  const outage = { since: 0, lastLog: 0, letThrough: 0 };

  const ruleOf = (clientId: string): Promise<ClientRateLimit | undefined> => {
    const hit = clients.get(clientId);
    if (hit && hit.until > Date.now()) return Promise.resolve(hit.rule);
    return o.clientLimit(clientId).then((rule) => {
      if (clients.size > 10_000) clients.clear();
      clients.set(clientId, { rule, until: Date.now() + CLIENT_CACHE_MS });
      return rule;
    });
  };
  const key = (kind: string, id: string) => `rl:${o.namespace}:${kind}:${id}`;
  const defaults = (kind: string, id: string, limit: number): LimitRule => ({ key: key(kind, id), limit, windowMs: l.windowMs, algorithm: l.algorithm });
  const clientRule = async (clientId: string): Promise<LimitRule> => {
    const own = await ruleOf(clientId).catch(() => undefined);
    return {
      key: key('c', clientId),
      limit: own?.limit ?? l.perClient,
      windowMs: own?.window_seconds ? own.window_seconds * 1000 : l.windowMs,
      algorithm: own?.algorithm ?? l.algorithm,
    };
  };

  return async (ctx: Context, next: Next) => {
    if (!l.enabled || !/^\/(fhir|auth|\.well-known)(\/|$)/.test(ctx.path)) return next();
    const signIn = ctx.method === 'POST' && SIGN_IN.test(ctx.path);
    const rules: LimitRule[] = [];
    const named = new Map<LimitRule, string>();
    const add = (rule: LimitRule, name: string) => (rules.push(rule), named.set(rule, name));
    if (signIn) {
      add(defaults('sip', ctx.ip, l.signInPerIp), 'sign-in requests from this IP address');
      const basic = basicClientId(ctx.get('authorization'));
      if (basic) add(await clientRule(basic), 'this client');
    } else {
      add(defaults('ip', ctx.ip, l.perIp), 'this IP address');
      const caller = /^Bearer\s/i.test(ctx.get('authorization')) ? await o.identify(ctx).catch(() => undefined) : undefined;
      if (caller) {
        add(await clientRule(caller.clientId), 'this client');
        if (caller.accountId) add(defaults('u', caller.accountId, l.perUser), 'this user');
      }
    }

    let states: LimitState[];
    try {
      states = await o.store.rateLimit(rules, `${Date.now()}-${randomBytes(6).toString('base64url')}`);
      if (outage.since) {
        o.logger.warn({ downMs: Date.now() - outage.since, letThrough: outage.letThrough }, 'rate-limit store reachable again');
        outage.since = 0;
      }
    } catch (err) {
      const now = Date.now();
      outage.since ||= now;
      if (signIn) {
        o.logger.warn({ err: (err as Error).message, path: ctx.path }, 'rate-limit store unreachable: sign-in refused (fails closed)');
        throw new OperationOutcomeError(503, outcome([issue('error', 'transient', 'Sign-in is unavailable for a moment (its rate limiter cannot be reached); try again shortly')]), {
          'Retry-After': String(STORE_DOWN_RETRY_SECONDS),
        });
      }
      outage.letThrough++;
      if (now - outage.lastLog > 10_000) {
        outage.lastLog = now;
        o.logger.warn({ err: (err as Error).message, letThrough: outage.letThrough }, 'rate-limit store unreachable: requests served without limits (fail open)');
      }
      return next();
    }

    const denied = states.filter((s) => !s.allowed).sort((a, b) => b.retryAfterMs - a.retryAfterMs)[0];
    const shown = denied ?? [...states].sort((a, b) => a.remaining - b.remaining || a.rule.limit - b.rule.limit)[0]!;
    ctx.set('RateLimit-Limit', String(shown.rule.limit));
    ctx.set('RateLimit-Remaining', String(shown.remaining));
    ctx.set('RateLimit-Reset', String(Math.ceil(shown.resetMs / 1000)));
    if (denied) {
      const seconds = Math.max(1, Math.ceil(denied.retryAfterMs / 1000));
      const what = named.get(denied.rule)!;
      throw errors.tooManyRequests(`Too many requests for ${what} (${denied.rule.limit} per ${denied.rule.windowMs / 1000} s); retry after ${seconds} s`, seconds);
    }
    await next();
  };
}

/** The client_id of HTTP Basic client authentication (RFC 6749 2.3.1: form-encoded before base64). */
function basicClientId(authorization: string): string | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i <= 0) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, i).replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * One access-token lookup per request, shared by the limiter and the FHIR endpoint: kept on the request's
 * headers object (the same object in Koa's context and in the FHIR request built from it) under a symbol of
 * its own. Not a WeakMap: on Node 22 an entry per short-lived object costs about 3 µs (set, then cleared by
 * the garbage collector), forty times a property.
 */
export function perRequestAccess<T>(resolve: (authorization: string | undefined) => Promise<T>): (headers: object & { authorization?: string }) => Promise<T> {
  const key = Symbol('medivoy.access');
  return (headers) => {
    const h = headers as { [k: symbol]: Promise<T> | undefined };
    let p = h[key];
    if (!p) {
      p = resolve(headers.authorization);
      h[key] = p;
    }
    return p;
  };
}
