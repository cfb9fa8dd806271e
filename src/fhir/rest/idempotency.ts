import { createHash } from 'node:crypto';
import type { KeyValueStore } from '../../infra/redis.js';
import { errors } from '../outcomes.js';
import type { FhirRequest, FhirResponse } from './types.js';

interface Stored {
  state: 'pending' | 'done';
  hash: string;
  response?: { status: number; headers?: Record<string, string>; body?: string };
}

/**
 * Safe retries for POST (create and Bundles): a request carrying `Idempotency-Key` is executed once per
 * key within the window; a retry with the same key and body replays the stored response, the same key
 * with a different body is a 422, and a retry while the first is still running is a 409.
 */
export async function idempotent(
  kv: KeyValueStore,
  ttlMs: number,
  req: FhirRequest,
  run: () => Promise<FhirResponse>,
  /** Whose keys these are (the client): keys of different callers never meet. */
  partition = '',
): Promise<FhirResponse> {
  const key = req.headers['idempotency-key'];
  if (req.method !== 'POST' || key === undefined) return run();
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) throw errors.badRequest('Idempotency-Key must be 1-255 visible ASCII characters');
  const hash = createHash('sha256').update(`${req.segments.join('/')}\n${JSON.stringify(req.body ?? null)}`).digest('hex');
  const storeKey = `idem:${createHash('sha256').update(`${partition}\u0000${key}`).digest('hex')}`;
  const claimed = await kv.set(storeKey, JSON.stringify({ state: 'pending', hash } satisfies Stored), ttlMs, true);
  if (!claimed) {
    const raw = await kv.get(storeKey);
    const stored = raw ? (JSON.parse(raw) as Stored) : undefined;
    if (!stored) return idempotent(kv, ttlMs, req, run); // expired in between: claim again
    if (stored.hash !== hash) throw errors.businessRule('This Idempotency-Key was already used with a different request body');
    if (stored.state === 'pending' || !stored.response) throw errors.conflict('A request with this Idempotency-Key is still being processed; retry shortly');
    const r = stored.response;
    return { status: r.status, headers: { ...r.headers, 'Idempotent-Replayed': 'true' }, body: r.body === undefined ? undefined : { json: r.body } };
  }
  let res: FhirResponse;
  try {
    res = await run();
  } catch (err) {
    // Failed requests are not remembered: the client may fix the cause and retry with the same key.
    await kv.del(storeKey);
    throw err;
  }
  const body = res.body === undefined ? undefined : 'json' in res.body && typeof res.body.json === 'string' && Object.keys(res.body).length === 1 ? res.body.json : JSON.stringify(res.body);
  await kv.set(storeKey, JSON.stringify({ state: 'done', hash, response: { status: res.status, headers: res.headers, body } } satisfies Stored), ttlMs);
  return res;
}
