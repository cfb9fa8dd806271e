import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import Router from '@koa/router';
import { documentationPagePolicy } from '../http/security-headers.js';

/** The public SMART client the dashboard signs in with (registered at start-up, redirect `[BASE_URL]/admin/`). */
export const ADMIN_CLIENT_ID = 'medivoy-admin-dashboard';
export const ADMIN_SCOPES = 'openid fhirUser user/*.rs';

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Medivoy administration</title><link rel="stylesheet" href="/admin/dashboard.css"></head>
<body>
<header><h1>Medivoy administration</h1><span id="who"></span><button id="sign-out" hidden>Sign out</button></header>
<main>
<section id="signed-out" hidden><p>Sign in with your Medivoy administrator account.</p><button id="sign-in">Sign in</button></section>
<section id="dashboard" hidden>
  <form id="controls">
    <label>Organization <select id="organization"></select></label>
    <label>From <input type="date" id="start" required></label>
    <label>To <input type="date" id="end" required></label>
    <span class="presets"><button type="button" data-days="7">7 days</button><button type="button" data-days="30">30 days</button><button type="button" data-days="90">90 days</button></span>
    <button type="submit" id="apply">Show</button>
  </form>
  <p id="status" role="status"></p>
  <div id="kpis" class="kpis"></div>
  <div class="downloads">Reports: <button data-format="csv">CSV</button> <button data-format="xlsx">Excel</button> <button data-format="pdf">PDF</button> <span id="report-progress"></span></div>
  <div class="charts">
    <figure><figcaption>Appointments per day</figcaption><div class="chart-box"><canvas id="chart-daily"></canvas></div></figure>
    <figure><figcaption>Revenue per day</figcaption><div class="chart-box"><canvas id="chart-revenue"></canvas></div></figure>
    <figure><figcaption>Appointments by status</figcaption><div class="chart-box"><canvas id="chart-status"></canvas></div></figure>
    <figure><figcaption>Popular specialties</figcaption><div class="chart-box"><canvas id="chart-specialties"></canvas></div></figure>
    <figure><figcaption>Peak hours</figcaption><div class="chart-box"><canvas id="chart-hours"></canvas></div></figure>
    <figure><figcaption>Revenue by payment method</figcaption><div class="chart-box"><canvas id="chart-methods"></canvas></div></figure>
  </div>
</section>
</main>
<script src="/admin/chart.umd.min.js"></script><script src="/admin/dashboard.js"></script>
</body></html>`;

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}
const asset = (body: Buffer | string, type: string): Asset => {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return { body: b, type, etag: `"${createHash('sha256').update(b).digest('base64url').slice(0, 27)}"` };
};

/**
 * `/admin`: the administrators' dashboard, plain HTML and JavaScript (no bundler) with Chart.js served from
 * the installed package. It signs in through the product's own SMART authorization server (authorization
 * code with PKCE, the same sign-in and consent pages as every app) and reads `$analytics-context`,
 * `$analytics` and `$analytics-report` with the user's token. Only this origin's scripts, styles and API.
 */
export function adminRoutes(opts: { fhirBase: () => string; issuer: () => string; apiOrigins: () => string[] }): Router {
  const router = new Router();
  const chartDir = dirname(createRequire(import.meta.url).resolve('chart.js'));
  const files: Record<string, Asset> = {
    'chart.umd.min.js': asset(readFileSync(join(chartDir, 'chart.umd.min.js')), 'text/javascript; charset=utf-8'),
    'dashboard.js': asset(readFileSync(new URL('../../resources/admin/dashboard.js', import.meta.url)), 'text/javascript; charset=utf-8'),
    'dashboard.css': asset(readFileSync(new URL('../../resources/admin/dashboard.css', import.meta.url)), 'text/css; charset=utf-8'),
  };
  const page = asset(PAGE, 'text/html; charset=utf-8');
  router.get(['/admin', '/admin/'], (ctx) => {
    ctx.set('Content-Security-Policy', documentationPagePolicy({ apiOrigins: opts.apiOrigins() }));
    ctx.set('Cache-Control', 'no-cache');
    ctx.type = page.type;
    ctx.body = page.body;
  });
  router.get('/admin/config.json', (ctx) => {
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = { clientId: ADMIN_CLIENT_ID, scope: ADMIN_SCOPES, fhirBase: opts.fhirBase(), authorize: `${opts.issuer()}/authorize`, token: `${opts.issuer()}/token` };
  });
  router.get('/admin/:file', (ctx) => {
    const a = files[ctx.params.file!];
    if (!a) return;
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.set('ETag', a.etag);
    if (ctx.get('If-None-Match') === a.etag) {
      ctx.status = 304;
      return;
    }
    ctx.type = a.type;
    ctx.body = a.body;
  });
  return router;
}
