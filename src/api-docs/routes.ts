import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import Router from '@koa/router';
import type { Context } from 'koa';
import { errors } from '../fhir/outcomes.js';
import { documentationPagePolicy } from '../http/security-headers.js';
import { buildOpenApiDocument, type OpenApiSources } from './openapi-document.js';
import { documentPart, partNames } from './document-parts.js';
import type { OpenApiDocument } from './openapi-types.js';
import { API_DOCS_PAGE, API_DOCS_STYLE, apiDocsScript } from './swagger-page.js';

/** The viewer's files served from the installed swagger-ui-dist (nothing from a CDN), by name. */
const VIEWER_FILES: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
  'oauth2-redirect.html': 'text/html; charset=utf-8',
  'oauth2-redirect.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
};

/**
 * The one `<style>` element the viewer writes (inside the SVG logo of its top bar); the page's policy allows
 * exactly this text by its hash. A new swagger-ui-dist with another logo shows a CSP violation in the browser test.
 */
const VIEWER_LOGO_STYLE = '.logo_small_svg__cls-2{fill:#fff}.logo_small_svg__cls-3{fill:#85ea2d}';

interface Asset {
  body: Buffer;
  gzip?: Buffer;
  type: string;
  etag: string;
}

function asset(body: Buffer, type: string, compress: boolean): Asset {
  return { body, type, gzip: compress ? gzipSync(body) : undefined, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/** Sends an asset with its ETag (304 when the client has it), gzipped when the client takes it. */
function send(ctx: Context, a: Asset, cacheControl: string): void {
  ctx.set('Cache-Control', cacheControl);
  ctx.set('ETag', a.etag);
  ctx.vary('Accept-Encoding');
  if (ctx.get('If-None-Match').split(',').some((t) => t.trim() === a.etag)) {
    ctx.status = 304;
    return;
  }
  ctx.type = a.type;
  if (a.gzip && ctx.acceptsEncodings('gzip', 'identity') === 'gzip') {
    ctx.set('Content-Encoding', 'gzip');
    ctx.body = a.gzip;
  } else ctx.body = a.body;
}

export interface ApiDocsOptions {
  /** What the document is generated from; undefined until the server has started (its base URL is known). */
  sources: () => OpenApiSources | undefined;
}

/**
 * `/openapi.json` (generated once, then served from memory with an ETag), its parts `/openapi/[type].json`,
 * and `/api-docs`, the document in Swagger UI with "try it out" against this server once a token is given
 * (Authorize).
 */
export function apiDocsRoutes(opts: ApiDocsOptions): Router {
  const router = new Router();
  const dist = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const viewer = new Map<string, Asset>();
  let built: { doc: OpenApiDocument; full: Asset; config: Asset; script: Asset; parts: Map<string, Asset | undefined>; policy: string } | undefined;

  const document = () => {
    if (built) return built;
    const sources = opts.sources();
    if (!sources) throw errors.unavailable('The server is starting');
    const doc = buildOpenApiDocument(sources);
    const json = (v: unknown) => asset(Buffer.from(JSON.stringify(v)), 'application/json; charset=utf-8', true);
    // The viewer's definitions: one part per resource type (Patient first shown), the whole document last.
    const names = partNames(doc);
    const config = {
      urls: [...names.map((name) => ({ name, url: `/openapi/${name}.json` })), { name: 'Everything (slow to render)', url: '/openapi.json' }],
      'urls.primaryName': names.includes('Patient') ? 'Patient' : names[0],
    };
    built = {
      doc, full: json(doc), config: json(config), parts: new Map(),
      script: asset(Buffer.from(apiDocsScript(doc.servers[0]!.url)), 'text/javascript; charset=utf-8', false),
      policy: documentationPagePolicy({
        apiOrigins: [new URL(doc.servers[0]!.url).origin, new URL(sources.smart.token_endpoint).origin],
        styleHashes: [createHash('sha256').update(VIEWER_LOGO_STYLE).digest('base64')],
      }),
    };
    return built;
  };
  const part = (name: string): Asset => {
    const d = document();
    if (!d.parts.has(name)) {
      const p = documentPart(d.doc, name);
      d.parts.set(name, p && asset(Buffer.from(JSON.stringify(p)), 'application/json; charset=utf-8', true));
    }
    const a = d.parts.get(name);
    if (!a) throw errors.notFound(`No part '${name}' of the OpenAPI document; see /api-docs/config.json for the list`);
    return a;
  };
  const page = asset(Buffer.from(API_DOCS_PAGE), 'text/html; charset=utf-8', false);
  const style = asset(Buffer.from(API_DOCS_STYLE), 'text/css; charset=utf-8', false);
  // Not patient data: caches may keep these; the page and the document are revalidated (their ETag is a digest).
  router.get('/openapi.json', (ctx) => send(ctx, document().full, 'no-cache'));
  router.get('/openapi/:file', (ctx) => {
    const m = /^([A-Za-z]+)\.json$/.exec(ctx.params.file!);
    if (!m) throw errors.notFound(`No such document: /openapi/${ctx.params.file}`);
    send(ctx, part(m[1]!), 'no-cache');
  });
  router.get('/api-docs', (ctx) => {
    ctx.set('Content-Security-Policy', document().policy); // it names the API's origins
    send(ctx, page, 'no-cache');
  });
  router.get('/api-docs/:file', (ctx) => {
    const name = ctx.params.file!;
    if (name === 'config.json') return send(ctx, document().config, 'no-cache');
    if (name === 'api-docs.js') return send(ctx, document().script, 'no-cache');
    if (name === 'api-docs.css') return send(ctx, style, 'no-cache');
    const type = VIEWER_FILES[name];
    if (!type) throw errors.notFound(`No such file: /api-docs/${name}`);
    let a = viewer.get(name);
    if (!a) viewer.set(name, (a = asset(readFileSync(join(dist, name)), type, !type.startsWith('image/'))));
    if (type.startsWith('text/html')) ctx.set('Content-Security-Policy', document().policy);
    send(ctx, a, 'public, max-age=86400');
  });
  // Read-only resources: any other method is a 405 naming the allowed ones.
  router.all(['/openapi.json', '/openapi/:file', '/api-docs', '/api-docs/:file'], (ctx) => {
    if (ctx.method !== 'OPTIONS') throw errors.methodNotAllowed(`${ctx.method} is not allowed on ${ctx.path}`, ['GET', 'HEAD']);
  });
  return router;
}
