import type { Context, Next } from 'koa';
import { httpDuration, httpRequests } from '../infra/metrics.js';

/** Labels of a request the FHIR endpoint recognized (set by the adapter); other paths are counted by area. */
export interface RequestLabels {
  interaction: string;
  resource_type: string;
}

/** Counts and times every request with its final status; mounted outside the error handler so errors count too. */
export function requestMetrics() {
  return async (ctx: Context, next: Next) => {
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const labels: RequestLabels = (ctx.state.metricsLabels as RequestLabels | undefined) ?? { interaction: areaOf(ctx.path), resource_type: '' };
      httpRequests.inc({ ...labels, status: String(ctx.status) });
      httpDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };
}

function areaOf(path: string): string {
  if (path.startsWith('/auth') || path.startsWith('/fhir/.well-known')) return 'auth';
  if (path === '/health' || path === '/ready' || path.startsWith('/health/')) return 'health';
  if (path === '/metrics') return 'metrics';
  if (path.startsWith('/fhir')) return 'unmatched';
  return 'other';
}
