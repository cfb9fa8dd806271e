import { errors } from '../fhir/outcomes.js';
import type { RateLimitAlgorithm } from '../infra/rate-limit-algorithms.js';

/** A client's own limit, stored in its registration (`rate_limit`); absent fields take the server defaults. */
export interface ClientRateLimit {
  limit: number;
  window_seconds?: number;
  algorithm?: RateLimitAlgorithm;
}

/** Checks a registration's `rate_limit` (400 with the reason when it is not one). */
export function parseClientRateLimit(value: unknown): ClientRateLimit {
  const v = value as Record<string, unknown> | null;
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw errors.badRequest('rate_limit must be an object such as {"limit": 600, "window_seconds": 60, "algorithm": "sliding-window"}');
  const unknown = Object.keys(v).filter((k) => !['limit', 'window_seconds', 'algorithm'].includes(k));
  if (unknown.length) throw errors.badRequest(`rate_limit has unknown fields: ${unknown.join(', ')}`);
  if (!Number.isInteger(v.limit) || (v.limit as number) < 1 || (v.limit as number) > 10_000_000) throw errors.badRequest('rate_limit.limit must be an integer between 1 and 10000000');
  if (v.window_seconds !== undefined && (!Number.isInteger(v.window_seconds) || (v.window_seconds as number) < 1 || (v.window_seconds as number) > 86400)) {
    throw errors.badRequest('rate_limit.window_seconds must be an integer between 1 and 86400');
  }
  if (v.algorithm !== undefined && v.algorithm !== 'sliding-window' && v.algorithm !== 'token-bucket') throw errors.badRequest("rate_limit.algorithm must be 'sliding-window' or 'token-bucket'");
  return {
    limit: v.limit as number,
    ...(v.window_seconds !== undefined ? { window_seconds: v.window_seconds as number } : {}),
    ...(v.algorithm !== undefined ? { algorithm: v.algorithm as RateLimitAlgorithm } : {}),
  };
}

/** `--rate-limit 600/60s[:token-bucket]` of scripts/register-client. */
export function parseRateLimitOption(text: string): ClientRateLimit {
  const m = /^(\d+)(?:\/(\d+)s)?(?::(sliding-window|token-bucket))?$/.exec(text.trim());
  if (!m) throw errors.badRequest('--rate-limit must look like 600/60s or 600/60s:token-bucket');
  return parseClientRateLimit({ limit: Number(m[1]), ...(m[2] ? { window_seconds: Number(m[2]) } : {}), ...(m[3] ? { algorithm: m[3] } : {}) });
}
