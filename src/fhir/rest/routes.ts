import type { Handler } from './types.js';
import { read, vread, update, patch, remove } from './handlers/instance.js';
import { create, conditionalUpdate, conditionalDelete } from './handlers/type-level.js';
import { history } from './handlers/history.js';
import { search } from './handlers/search.js';
import { validate } from './handlers/validate.js';
import { metadata } from './handlers/metadata.js';
import { bundle } from './handlers/bundle.js';
import { patientEverything } from '../operations/patient-everything.js';
import type { BusinessOperation } from '../operations/registry.js';
import { operationRoutes } from './operation-routes.js';

/** CapabilityStatement interaction codes (R4 `TypeRestfulInteraction` / `SystemRestfulInteraction`). */
export type InteractionCode =
  | 'read' | 'vread' | 'update' | 'patch' | 'delete' | 'history-instance' | 'history-type' | 'create' | 'search-type'
  | 'history-system' | 'search-system' | 'batch' | 'transaction' | 'capabilities' | 'operation';

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Segments after the FHIR base: literals, `:type` (a resource type), `:id`, `:vid`. */
  pattern: string[];
  interaction: InteractionCode;
  /** For operations: the operation name without `$`. */
  operation?: string;
  /** For operations defined on some resource types only (e.g. Patient/$everything). */
  types?: string[];
  /** Further interactions the same route serves (a Bundle POST is both batch and transaction). */
  alsoDeclares?: InteractionCode[];
  /** True for conditional variants (declared as conditionalUpdate/conditionalDelete in the CapabilityStatement). */
  conditional?: boolean;
  handler: Handler;
}

/**
 * The FHIR core's interactions. Business operations (scheduling, reviews, billing, …) are not listed here:
 * their modules register them (operations/registry.ts) and {@link serverRoutes} adds their routes.
 */
export const routes: Route[] = [
  { method: 'GET', pattern: ['metadata'], interaction: 'capabilities', handler: metadata },
  { method: 'POST', pattern: [], interaction: 'transaction', alsoDeclares: ['batch'], handler: bundle },
  { method: 'GET', pattern: ['_history'], interaction: 'history-system', handler: history },
  { method: 'GET', pattern: [], interaction: 'search-system', handler: search },
  { method: 'POST', pattern: ['_search'], interaction: 'search-system', handler: search },
  { method: 'GET', pattern: [':type'], interaction: 'search-type', handler: search },
  { method: 'POST', pattern: [':type'], interaction: 'create', handler: create },
  { method: 'PUT', pattern: [':type'], interaction: 'update', conditional: true, handler: conditionalUpdate },
  { method: 'DELETE', pattern: [':type'], interaction: 'delete', conditional: true, handler: conditionalDelete },
  { method: 'GET', pattern: [':type', '_history'], interaction: 'history-type', handler: history },
  { method: 'POST', pattern: [':type', '_search'], interaction: 'search-type', handler: search },
  { method: 'POST', pattern: [':type', '$validate'], interaction: 'operation', operation: 'validate', handler: validate },
  { method: 'GET', pattern: [':type', ':id'], interaction: 'read', handler: read },
  { method: 'PUT', pattern: [':type', ':id'], interaction: 'update', handler: update },
  { method: 'PATCH', pattern: [':type', ':id'], interaction: 'patch', handler: patch },
  { method: 'DELETE', pattern: [':type', ':id'], interaction: 'delete', handler: remove },
  { method: 'POST', pattern: [':type', ':id', '$validate'], interaction: 'operation', operation: 'validate', handler: validate },
  { method: 'GET', pattern: [':type', ':id', '_history'], interaction: 'history-instance', handler: history },
  { method: 'GET', pattern: [':type', ':id', ':compartmentType'], interaction: 'search-type', types: ['Patient'], handler: search },
  { method: 'GET', pattern: [':type', '$everything'], interaction: 'operation', operation: 'everything', types: ['Patient'], handler: patientEverything },
  { method: 'GET', pattern: [':type', ':id', '$everything'], interaction: 'operation', operation: 'everything', types: ['Patient'], handler: patientEverything },
  { method: 'GET', pattern: [':type', ':id', '_history', ':vid'], interaction: 'vread', handler: vread },
];

/** Every route a server serves: the core interactions and its registered operations. The CapabilityStatement is derived from it. */
export function serverRoutes(operations: readonly BusinessOperation[]): Route[] {
  return [...routes, ...operationRoutes(operations)];
}

export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
}

/**
 * Finds the route for a method and path. Literal segments win over variables, so `Patient/_history`
 * is type history rather than a read of id `_history`. Returns the allowed methods when only the method is wrong.
 */
export function matchRoute(method: string, segments: string[], table: readonly Route[] = routes): RouteMatch | { allowed: string[] } | undefined {
  let candidates: RouteMatch[] = [];
  for (const route of table) {
    if (route.pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < segments.length && ok; i++) {
      const p = route.pattern[i]!;
      const s = segments[i]!;
      if (p.startsWith(':')) {
        if (s.startsWith('$') || s.startsWith('_')) ok = false;
        else params[p.slice(1)] = s;
      } else ok = p === s;
    }
    if (ok) candidates.push({ route, params });
  }
  if (!candidates.length) return undefined;
  const literals = (m: RouteMatch) => m.route.pattern.filter((p) => !p.startsWith(':')).length;
  const best = Math.max(...candidates.map(literals));
  candidates = candidates.filter((c) => literals(c) === best);
  const head = method === 'HEAD' ? 'GET' : method;
  const hit = candidates.find((c) => c.route.method === head);
  return hit ?? { allowed: [...new Set(candidates.map((c) => c.route.method))] };
}
