import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import { INVALID_TRACEID as INVALID_TRACE_ID, trace } from '@opentelemetry/api';
import type { Logger } from '../infra/logger.js';

/**
 * Assigns the request id (echoing a sane incoming X-Request-Id) and logs one line per request:
 * method, path, status, duration and id, never bodies or query values (they may hold PHI).
 */
export function requestContext(logger: Logger) {
  return async (ctx: Context, next: Next) => {
    const incoming = ctx.get('X-Request-Id');
    // With tracing on, the request id is the trace id, so a log line leads to its trace and back.
    const traceId = trace.getActiveSpan()?.spanContext().traceId;
    const requestId = traceId && traceId !== INVALID_TRACE_ID ? traceId : /^[A-Za-z0-9._-]{1,64}$/.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logger.info({ requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10 }, 'request');
    }
  };
}
