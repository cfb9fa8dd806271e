import type { Context, Next } from 'koa';
import { errors } from '../outcomes.js';
import type { FhirRequest, FhirResponse, HandlerContext } from './types.js';
import type { FhirRepository } from '../storage/repository.js';
import type { AccessContext } from '../../auth/access-policy.js';
import type { KeyValueStore } from '../../infra/redis.js';
import { idempotent } from './idempotency.js';
import { matchRoute } from './routes.js';

const FHIR_JSON = 'application/fhir+json';
const JSON_TYPES = /^(application\/(fhir\+json|json|json-patch\+json))\s*(;|$)/i;

/**
 * The only place where Koa meets the FHIR layer: builds a FhirRequest, dispatches it through the
 * interaction table, and writes the FhirResponse with content negotiation (R4 3.1.0.1.10 `_format`, `_pretty`).
 */
export function fhirEndpoint(opts: {
  mountPath: string;
  publicBaseUrl: () => string;
  context: (ctx: Context, auth: { repo: FhirRepository; access: AccessContext } | undefined) => HandlerContext;
  /**
   * The repository for an authenticated request (the caller's access policy inside it), or a 401/403.
   * Only the CapabilityStatement is served without it.
   */
  authorize: (req: FhirRequest) => Promise<{ repo: FhirRepository; access: AccessContext }>;
  idempotency: { kv: KeyValueStore; ttlMs: number };
  maxFormBytes?: number;
}) {
  return async (ctx: Context, _next: Next) => {
    negotiateFormat(ctx);
    const rest = ctx.path.slice(opts.mountPath.length).replace(/^\/+|\/+$/g, '');
    let segments: string[];
    try {
      segments = rest ? rest.split('/').map((s) => decodeURIComponent(s)) : [];
    } catch {
      throw errors.badRequest('The request path is not valid URL encoding');
    }
    const form = checkRequestContentType(ctx);
    const req: FhirRequest = {
      method: ctx.method,
      segments,
      query: new URLSearchParams(ctx.querystring),
      headers: ctx.headers as Record<string, string | undefined>,
      // POST [type]/_search: the form's parameters, kept as text (never parsed into objects).
      body: form ? new URLSearchParams(await readText(ctx, opts.maxFormBytes ?? 1_000_000)) : (ctx.request as { body?: unknown }).body,
      baseUrl: `${opts.publicBaseUrl()}${opts.mountPath}`,
    };
    const isPublic = req.method === 'GET' || req.method === 'HEAD' ? segments.length === 1 && segments[0] === 'metadata' : false;
    const auth = isPublic ? undefined : await opts.authorize(req);
    const handlerContext = opts.context(ctx, auth);
    // For the request metrics (http/request-metrics.ts): which interaction on which type this was.
    const match = matchRoute(req.method, segments, handlerContext.routes);
    if (match && 'route' in match) ctx.state.metricsLabels = { interaction: match.route.operation ? `$${match.route.operation}` : match.route.interaction, resource_type: match.params.type ?? '' };
    // Idempotency keys are per caller: another client's key must never replay this client's response.
    const res = await idempotent(opts.idempotency.kv, opts.idempotency.ttlMs, req, () => handlerContext.dispatch(req, handlerContext), auth?.access.clientId ?? 'anonymous');
    writeResponse(ctx, res);
  };
}

/** 406 for XML or other formats we do not produce; JSON in both of its FHIR spellings is accepted. */
function negotiateFormat(ctx: Context): void {
  const format = ctx.query._format;
  if (typeof format === 'string' && format) {
    if (!/^(json|application\/(fhir\+)?json)$/i.test(format.trim())) throw errors.notAcceptable(`_format '${format}' is not supported; this server speaks JSON only`);
    return;
  }
  const accept = ctx.get('Accept');
  if (!accept) return;
  if (!ctx.accepts(FHIR_JSON, 'application/json', 'application/json-patch+json')) {
    throw errors.notAcceptable(`Accept '${accept}' cannot be satisfied; this server returns application/fhir+json`);
  }
}

/** 415 for bodies we do not read; true when the body is a search form (POST …/_search). */
function checkRequestContentType(ctx: Context): boolean {
  if (!['POST', 'PUT', 'PATCH'].includes(ctx.method)) return false;
  const length = Number(ctx.get('Content-Length') || 0);
  const hasBody = length > 0 || ctx.get('Transfer-Encoding') !== '';
  if (!hasBody) return false;
  const type = ctx.get('Content-Type');
  if (type && /^application\/x-www-form-urlencoded/i.test(type) && /\/_search\/?$/.test(ctx.path)) return true;
  if (!JSON_TYPES.test(type)) throw errors.unsupportedMediaType(`Content-Type '${type || '(none)'}' is not supported; send application/fhir+json`);
  return false;
}

/** Reads a request body as UTF-8 text, refusing more than `limit` bytes with 413. */
async function readText(ctx: Context, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw errors.tooLarge(`The search form is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function writeResponse(ctx: Context, res: FhirResponse): void {
  ctx.status = res.status;
  for (const [k, v] of Object.entries(res.headers ?? {})) ctx.set(k, v);
  if (res.body === undefined || res.status === 304) {
    ctx.body = null;
    ctx.status = res.status;
    return;
  }
  const pretty = ctx.query._pretty === 'true';
  let text: string;
  if ('json' in res.body && typeof res.body.json === 'string' && Object.keys(res.body).length === 1) {
    text = pretty ? JSON.stringify(JSON.parse(res.body.json), null, 2) : res.body.json;
  } else {
    text = JSON.stringify(res.body, null, pretty ? 2 : undefined);
  }
  ctx.type = `${preferredJsonType(ctx)}; charset=utf-8`;
  ctx.body = text;
}

/** Answer in the JSON type the client asked for (some clients only accept application/json). */
function preferredJsonType(ctx: Context): string {
  const format = ctx.query._format;
  if (typeof format === 'string' && /^application\/json$/i.test(format)) return 'application/json';
  const accept = ctx.get('Accept');
  if (accept && ctx.accepts(FHIR_JSON, 'application/json') === 'application/json' && !/fhir\+json/i.test(accept)) return 'application/json';
  return FHIR_JSON;
}
