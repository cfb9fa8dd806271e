import type { Context, Next } from 'koa';
import { errors, isOperationOutcomeError, OperationOutcomeError } from '../fhir/outcomes.js';
import type { Logger } from '../infra/logger.js';
import { isDependencyUnavailable } from '../infra/unavailable.js';

/**
 * Mounted first: every failure becomes an OperationOutcome with the right status. Unknown errors
 * become a 500 that shows only the request id; the details go to the log, once.
 */
export function errorHandler(logger: Logger) {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw errors.notFound(`Nothing is served at ${ctx.path}`);
    } catch (err) {
      const requestId = String(ctx.state.requestId ?? '');
      const ooe = toOperationOutcomeError(err, requestId);
      if (ooe.status === 503 && !isOperationOutcomeError(err)) logger.warn({ requestId, method: ctx.method, path: ctx.path, reason: shortMessage(err) }, 'dependency unavailable');
      else if (ooe.status >= 500) logger.error({ err, requestId, method: ctx.method, path: ctx.path }, 'request failed');
      ctx.status = ooe.status;
      for (const [k, v] of Object.entries(ooe.headers)) ctx.set(k, v);
      ctx.type = 'application/fhir+json; charset=utf-8';
      ctx.body = JSON.stringify(ooe.outcome);
    }
  };
}

/** Maps body-parser and HTTP errors (which carry `status`/`type`) onto OperationOutcomes without leaking their messages. */
function toOperationOutcomeError(err: unknown, requestId: string): OperationOutcomeError {
  if (isOperationOutcomeError(err)) return err;
  // The database (or Redis) is not reachable: the client should come back shortly, not see a 500.
  if (isDependencyUnavailable(err)) return errors.unavailable('The server cannot reach its database or cache at the moment; retry shortly', 5);
  const e = err as { status?: number; statusCode?: number; type?: string; expose?: boolean; message?: string };
  const status = e?.status ?? e?.statusCode;
  if (e?.type === 'entity.too.large' || status === 413) return errors.tooLarge('The request body is larger than this server accepts');
  if (e?.type === 'entity.parse.failed' || (status === 400 && /json/i.test(e?.message ?? ''))) {
    return errors.badRequest('The request body is not valid JSON');
  }
  if (e?.type === 'encoding.unsupported' || status === 415) return errors.unsupportedMediaType('The request body encoding is not supported');
  if (e?.type === 'request.aborted') return errors.badRequest('The request was aborted by the client');
  if (status && status >= 400 && status < 500 && e.expose) return errors.badRequest(e.message ?? 'Bad request');
  // A body parser's refusal without a message meant for clients, e.g. a "__proto__" key (prototype poisoning).
  if (status && status >= 400 && status < 500) return errors.badRequest('The request body is not acceptable JSON');
  return errors.internal(requestId);
}

function shortMessage(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split('\n')[0]!.slice(0, 200);
}
