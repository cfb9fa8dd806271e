import type { Action } from './events.js';

export interface Interaction {
  /** R4 restful-interaction code, or `operation` (then `operation` names it). */
  code: string;
  operation?: string;
  action: Action;
  /** Writes are recorded with their versions (side writes); the request adds a record only when it fails. */
  write: boolean;
  /** The resource the path names, if any (`Type/id`, `Type/id/_history/v`). */
  target?: string;
}

/** The interaction of a FHIR request from its method and path below the FHIR base (BALP subtype, action). */
export function interactionOf(method: string, segments: string[], bundleType?: unknown): Interaction {
  const op = segments.find((s) => s.startsWith('$'));
  const [type, id] = segments;
  const target = type && id && !id.startsWith('$') && !id.startsWith('_') ? `${type}/${id}` : undefined;
  if (op) return { code: 'operation', operation: op.slice(1), action: 'E', write: false, target };
  const m = method === 'HEAD' ? 'GET' : method;
  if (!segments.length) {
    if (m === 'POST') return { code: bundleType === 'transaction' ? 'transaction' : 'batch', action: 'E', write: false };
    return { code: 'search-system', action: 'E', write: false };
  }
  if (segments.length === 1) {
    if (type === '_history') return { code: 'history-system', action: 'R', write: false };
    if (m === 'POST') return { code: 'create', action: 'C', write: true };
    if (m === 'PUT') return { code: 'update', action: 'U', write: true };
    if (m === 'PATCH') return { code: 'patch', action: 'U', write: true };
    if (m === 'DELETE') return { code: 'delete', action: 'D', write: true };
    return { code: 'search-type', action: 'E', write: false };
  }
  if (segments.length === 2) {
    if (id === '_search') return { code: 'search-type', action: 'E', write: false };
    if (id === '_history') return { code: 'history-type', action: 'R', write: false };
    if (m === 'PUT') return { code: 'update', action: 'U', write: true, target };
    if (m === 'PATCH') return { code: 'patch', action: 'U', write: true, target };
    if (m === 'DELETE') return { code: 'delete', action: 'D', write: true, target };
    return { code: 'read', action: 'R', write: false, target };
  }
  if (segments[2] === '_history') {
    if (segments.length >= 4) return { code: 'vread', action: 'R', write: false, target: `${target}/_history/${segments[3]}` };
    return { code: 'history-instance', action: 'R', write: false, target };
  }
  // Compartment search: Patient/123/Observation
  return { code: 'search-type', action: 'E', write: false, target };
}
