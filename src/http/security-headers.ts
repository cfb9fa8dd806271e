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

/**
 * Content-Security-Policy of the server's own documentation pages (/api-docs): scripts, styles and images
 * from this origin only (the viewer's bundled SVG icons are `data:` URLs) plus the `<style>` elements
 * given by their SHA-256 (`styleHashes`, base64), requests to this origin and to the given API origins (the
 * FHIR base and the authorization server, when BASE_URL names another origin), no plugins, frames, forms
 * posting elsewhere or `<base>` rewriting.
 */
export function documentationPagePolicy(opts: { apiOrigins?: string[]; styleHashes?: string[] } = {}): string {
  const connect = ["'self'", ...new Set(opts.apiOrigins ?? [])].join(' ');
  return [
    "default-src 'none'",
    "script-src 'self'",
    ["style-src 'self'", ...(opts.styleHashes ?? []).map((h) => `'sha256-${h}'`)].join(' '),
    "img-src 'self' data:",
    `connect-src ${connect}`,
    "form-action 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}
