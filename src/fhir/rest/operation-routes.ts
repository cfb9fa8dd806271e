import { errors } from '../outcomes.js';
import { operationInput, type BusinessOperation } from '../operations/registry.js';
import type { Handler } from './types.js';
import type { Route } from './routes.js';

/**
 * The routes of registered business operations: one per level and method, each handler turning the plain
 * FHIR request into the operation's input and its result into a response. The operation itself sees
 * neither the request nor the handler types.
 */
export function operationRoutes(ops: readonly BusinessOperation[]): Route[] {
  const out: Route[] = [];
  for (const op of ops) {
    const handler = operationHandler(op);
    for (const level of op.levels) {
      const pattern = level === 'system' ? [`$${op.name}`] : level === 'type' ? [':type', `$${op.name}`] : [':type', ':id', `$${op.name}`];
      for (const method of op.methods) {
        out.push({ method, pattern, interaction: 'operation', operation: op.name, types: level === 'system' ? undefined : op.resourceTypes, handler });
      }
    }
  }
  return out;
}

function operationHandler(op: BusinessOperation): Handler {
  return async (req, ctx, { type, id }) => {
    if (type !== undefined && !op.resourceTypes?.includes(type)) throw errors.notFound(`$${op.name} is defined for ${op.resourceTypes?.join(', ') ?? 'the system level'}, not ${type}`);
    const target = { type, id };
    op.access?.(ctx.access, target);
    const input = operationInput(op, { target, method: req.method, body: req.body, query: req.query, headers: req.headers });
    const result = await op.handler(input, { repo: ctx.repo, access: ctx.access, baseUrl: req.baseUrl, reportError: ctx.onUnexpectedError });
    return { status: result.status ?? 200, headers: result.headers, body: result.resource };
  };
}
