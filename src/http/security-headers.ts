import type { Context, Next } from 'koa';

const EXPOSED = ['ETag', 'Location', 'Content-Location', 'Last-Modified', 'X-Request-Id', 'Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'].join(', ');

/**
 * CORS for browser apps (R4 and SMART apps call us directly) and the usual hardening headers.
 * `origins: '*'` allows any origin; otherwise only the listed ones.
 */
export function securityHeaders(opts: { origins: '*' | string[] }) {
  return async (ctx: Context, next: Next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'no-referrer');
    const origin = ctx.get('Origin');
    const allowed = origin && (opts.origins === '*' || opts.origins.includes(origin));
    if (allowed) {
      ctx.set('Access-Control-Allow-Origin', opts.origins === '*' ? '*' : origin);
      if (opts.origins !== '*') ctx.vary('Origin');
      ctx.set('Access-Control-Expose-Headers', EXPOSED);
    }
    if (ctx.method === 'OPTIONS' && ctx.get('Access-Control-Request-Method')) {
      if (allowed) {
        ctx.set('Access-Control-Allow-Methods', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS');
        ctx.set('Access-Control-Allow-Headers', ctx.get('Access-Control-Request-Headers') || 'Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, Prefer, X-Request-Id');
        ctx.set('Access-Control-Max-Age', '600');
      }
      ctx.status = 204;
      return;
    }
    // Responses may carry patient data: never let shared caches keep them unless a handler chose otherwise.
    // Set before `next` so that error responses (written by the outer error handler) carry it too.
    ctx.set('Cache-Control', 'no-store');
    await next();
  };
}
