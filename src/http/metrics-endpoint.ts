import { createServer, type Server } from 'node:http';
import Router from '@koa/router';
import { errors } from '../fhir/outcomes.js';
import { exposition, registry } from '../infra/metrics.js';
import type { AccessContext } from '../auth/access-policy.js';
import { StartupError } from '../infra/startup-error.js';

/** The scope a client is registered with (or a system administrator's token) to read /metrics on the main port. */
export const METRICS_SCOPE = 'metrics';

/**
 * `GET /metrics` on the main port, in the Prometheus text format, for a token granted the `metrics` scope
 * (a backend-services client registered with it) or a system administrator's; anyone else 401/403.
 */
export function metricsRoutes(authenticate: (authorization: string | undefined) => Promise<AccessContext>): Router {
  const router = new Router();
  router.get('/metrics', async (ctx) => {
    const access = await authenticate(ctx.get('authorization') || undefined);
    if (!access.granted?.includes(METRICS_SCOPE) && access.role !== 'system-admin') {
      throw errors.forbidden(`Reading /metrics needs a token with the '${METRICS_SCOPE}' scope or a system administrator's`);
    }
    ctx.type = registry.contentType;
    ctx.body = await exposition();
  });
  return router;
}

/**
 * `/metrics` without authentication on a separate listen address (METRICS_LISTEN, e.g. 127.0.0.1:9464), for a
 * Prometheus on a private network; nothing else is served there.
 */
export async function startMetricsListener(listen: { host: string; port: number }): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Only GET /metrics is served here\n');
      return;
    }
    exposition().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n'),
    );
  });
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject).listen(listen.port, listen.host)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE') throw new StartupError(`METRICS_LISTEN ${listen.host}:${listen.port} is already in use: choose another address for the metrics listener.`);
    throw err;
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://${listen.host}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
