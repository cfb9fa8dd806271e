import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { EndpointPolicy } from './endpoint-policy.js';

export interface HookRequest {
  method: 'POST' | 'PUT';
  url: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
}

/**
 * Sends one notification. Success is a 2xx answer; anything else (a 3xx included: redirects are not followed, the
 * allow-list checked the endpoint, not where it points), a timeout or a refused address is an error with the reason.
 */
export function sendHook(req: HookRequest, policy: EndpointPolicy): Promise<void> {
  const u = new URL(req.url);
  if (!policy.literalAllowed(u.hostname)) return Promise.reject(new Error(`${u.hostname} is not on the endpoint allow-list`));
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  const body = req.body === undefined ? undefined : Buffer.from(req.body, 'utf8');
  return new Promise<void>((resolve, reject) => {
    const r = send(u, {
      method: req.method,
      headers: { ...req.headers, 'content-length': String(body?.length ?? 0), 'user-agent': 'Medivoy-Subscriptions/1' },
      lookup: policy.lookup as never,
      timeout: req.timeoutMs,
      agent: false,
    }, (res) => {
      res.resume();
      res.on('end', () => {
        const s = res.statusCode ?? 0;
        if (s >= 200 && s < 300) resolve();
        else if (s >= 300 && s < 400) reject(new Error(`HTTP ${s} from ${req.url}: redirects are not followed`));
        else reject(new Error(`HTTP ${s} from ${req.url}`));
      });
      res.on('error', reject);
    });
    r.on('timeout', () => r.destroy(new Error(`no answer from ${req.url} within ${req.timeoutMs} ms`)));
    r.on('error', (err) => reject(new Error(`${req.url}: ${(err as Error).message}`)));
    r.end(body);
  });
}
