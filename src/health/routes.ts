import Router from '@koa/router';

export interface HealthDeps {
  version: string;
  environment: string;
  startedAt: Date;
  checks: Record<string, () => Promise<boolean>>;
  /** True once start-up finished: indexes of the stored types ensured, search parameters loaded, operations published. */
  started: () => boolean;
  /** Reasons not to take traffic yet besides the checks (e.g. interrupted writes still being undone). */
  pending?: () => string[];
}

/**
 * Liveness (`/health`: the process answers) and readiness (`/ready`, also at `/health/ready`: start-up is
 * complete and every dependency answers within 2 s, else 503 with the reason), for load balancers and orchestrators.
 */
export function healthRouter(deps: HealthDeps): Router {
  const router = new Router();
  router.get('/health', (ctx) => {
    ctx.body = {
      status: 'ok',
      timestamp: new Date().toISOString(),
      uptime: Math.round((Date.now() - deps.startedAt.getTime()) / 1000),
      environment: deps.environment,
      version: deps.version,
    };
  });
  router.get(['/ready', '/health/ready'], async (ctx) => {
    const results: Record<string, 'up' | 'down'> = {};
    await Promise.all(
      Object.entries(deps.checks).map(async ([name, check]) => {
        const ok = await Promise.race([check().catch(() => false), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
        results[name] = ok ? 'up' : 'down';
      }),
    );
    const started = deps.started();
    const down = Object.entries(results).filter(([, s]) => s === 'down').map(([name]) => `${name} is not reachable`);
    if (!started) down.unshift('start-up is not complete');
    down.push(...(deps.pending?.() ?? []));
    const ready = down.length === 0;
    ctx.status = ready ? 200 : 503;
    if (!ready) ctx.set('Retry-After', '5');
    ctx.body = {
      status: ready ? 'ready' : 'not ready',
      checks: results,
      startup: started ? 'complete' : 'in progress',
      ...(ready ? {} : { reason: down.join('; ') }),
      timestamp: new Date().toISOString(),
    };
  });
  return router;
}
