import Router from '@koa/router';

export interface HealthDeps {
  version: string;
  environment: string;
  startedAt: Date;
  checks: Record<string, () => Promise<boolean>>;
}

/** Liveness (`/health`) and readiness (`/health/ready`: every dependency answers, else 503). */
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
  router.get('/health/ready', async (ctx) => {
    const results: Record<string, 'up' | 'down'> = {};
    await Promise.all(
      Object.entries(deps.checks).map(async ([name, check]) => {
        const ok = await Promise.race([check().catch(() => false), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
        results[name] = ok ? 'up' : 'down';
      }),
    );
    const ready = Object.values(results).every((s) => s === 'up');
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'not ready', checks: results, timestamp: new Date().toISOString() };
  });
  return router;
}
