/**
 * The two rate-limit algorithms, once as a Redis Lua script (atomic, shared by every server process, timed by
 * the Redis server's clock so that processes with skewed clocks agree) and once in process memory (the
 * fallback without Redis: one count per process).
 *
 * One call checks several counters (the client's, the user's, the IP's) and consumes from all of them only
 * when every one allows the request: a request refused by its IP limit costs its client nothing.
 */

export type RateLimitAlgorithm = 'sliding-window' | 'token-bucket';

export interface LimitRule {
  key: string;
  /** Requests per window (sliding window) or bucket capacity (token bucket, refilled at limit per window). */
  limit: number;
  windowMs: number;
  algorithm: RateLimitAlgorithm;
}

export interface LimitState {
  rule: LimitRule;
  allowed: boolean;
  /** Requests left after this one. */
  remaining: number;
  /** When refused: how long until the request would be allowed. */
  retryAfterMs: number;
  /** How long until the counter is back to its full quota, or (sliding window) the oldest request leaves it. */
  resetMs: number;
}

/**
 * KEYS: one per rule. ARGV: a unique member id, then per rule: algorithm (1 sliding window, 2 token bucket),
 * limit, window ms. Returns per rule: allowed (0/1), remaining, retry-after ms, reset ms.
 * Sliding window: a sorted set of request times (exact; memory grows with the limit).
 * Token bucket: a hash of the tokens left and when they were counted.
 */
export const RATE_LIMIT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local n = #KEYS
local states = {}
local all = true
for i = 1, n do
  local algo = tonumber(ARGV[2 + (i - 1) * 3])
  local limit = tonumber(ARGV[3 + (i - 1) * 3])
  local window = tonumber(ARGV[4 + (i - 1) * 3])
  local key = KEYS[i]
  if algo == 1 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local count = redis.call('ZCARD', key)
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local reset = 0
    if oldest[2] then reset = tonumber(oldest[2]) + window - now end
    local ok = count < limit
    if not ok then all = false end
    states[i] = { algo, limit, window, ok, count, reset }
  else
    local h = redis.call('HMGET', key, 'tokens', 'ts')
    local tokens = tonumber(h[1]) or limit
    local ts = tonumber(h[2]) or now
    local rate = limit / window
    tokens = math.min(limit, tokens + math.max(0, now - ts) * rate)
    local ok = tokens >= 1
    if not ok then all = false end
    states[i] = { algo, limit, window, ok, tokens, 0 }
  end
end
local out = {}
for i = 1, n do
  local s = states[i]
  local algo, limit, window, ok, v = s[1], s[2], s[3], s[4], s[5]
  local key = KEYS[i]
  local allowed, remaining, retry, reset = 0, 0, 0, 0
  if algo == 1 then
    local count = v
    reset = s[6]
    if all then
      redis.call('ZADD', key, now, member)
      count = count + 1
      if reset == 0 then reset = window end
      redis.call('PEXPIRE', key, window)
      allowed = 1
    elseif not ok then
      retry = reset
    end
    remaining = limit - count
  else
    local tokens = v
    local rate = limit / window
    if all then
      tokens = tokens - 1
      allowed = 1
    elseif not ok then
      retry = math.ceil((1 - tokens) / rate)
    end
    redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
    redis.call('PEXPIRE', key, window)
    remaining = math.floor(tokens)
    reset = math.ceil((limit - tokens) / rate)
  end
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = allowed
  out[#out + 1] = remaining
  out[#out + 1] = retry
  out[#out + 1] = reset
end
return out
`;

export function luaArgs(rules: LimitRule[], member: string): { keys: string[]; args: (string | number)[] } {
  return {
    keys: rules.map((r) => r.key),
    args: [member, ...rules.flatMap((r) => [r.algorithm === 'sliding-window' ? 1 : 2, r.limit, r.windowMs])],
  };
}

export function fromLuaReply(rules: LimitRule[], reply: unknown): LimitState[] {
  const v = (reply as (number | string)[]).map(Number);
  return rules.map((rule, i) => ({ rule, allowed: v[i * 4] === 1, remaining: v[i * 4 + 1]!, retryAfterMs: v[i * 4 + 2]!, resetMs: v[i * 4 + 3]! }));
}

type Entry = { times?: number[]; tokens?: number; ts?: number; expiresAt: number };

/** The same algorithms in process memory (no Redis): counts are per process. */
export class InProcessLimiter {
  private readonly entries = new Map<string, Entry>();
  private lastSweep = Date.now();

  hit(rules: LimitRule[], now = Date.now()): LimitState[] {
    this.sweep(now);
    const looked = rules.map((rule) => {
      const e = this.entries.get(rule.key);
      if (rule.algorithm === 'sliding-window') {
        const times = (e?.times ?? []).filter((t) => t > now - rule.windowMs);
        return { rule, times, ok: times.length < rule.limit, tokens: 0 };
      }
      const rate = rule.limit / rule.windowMs;
      const tokens = Math.min(rule.limit, (e?.tokens ?? rule.limit) + Math.max(0, now - (e?.ts ?? now)) * rate);
      return { rule, times: [] as number[], ok: tokens >= 1, tokens };
    });
    const all = looked.every((l) => l.ok);
    return looked.map(({ rule, times, ok, tokens }) => {
      if (rule.algorithm === 'sliding-window') {
        if (all) times.push(now);
        this.entries.set(rule.key, { times, expiresAt: now + rule.windowMs });
        const reset = times.length ? times[0]! + rule.windowMs - now : 0;
        return { rule, allowed: all, remaining: Math.max(0, rule.limit - times.length), retryAfterMs: !all && !ok ? reset : 0, resetMs: reset };
      }
      const rate = rule.limit / rule.windowMs;
      const left = all ? tokens - 1 : tokens;
      this.entries.set(rule.key, { tokens: left, ts: now, expiresAt: now + rule.windowMs });
      return {
        rule, allowed: all, remaining: Math.max(0, Math.floor(left)),
        retryAfterMs: !all && !ok ? Math.ceil((1 - left) / rate) : 0, resetMs: Math.ceil((rule.limit - left) / rate),
      };
    });
  }

  /** Drops expired counters now and then, so that many one-off IPs do not grow the map for ever. */
  private sweep(now: number) {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
  }
}
