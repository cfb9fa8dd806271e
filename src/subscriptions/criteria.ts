import { errors, isOperationOutcomeError } from '../fhir/outcomes.js';
import { paramCondition, UnsupportedCriterion, type Condition } from '../fhir/search/conditions.js';
import { splitModifier } from '../fhir/search/engine.js';
import type { Indexer, SearchIndex } from '../fhir/search/index-entry.js';
import type { SearchParameterRegistry } from '../fhir/search/parameters.js';
import { isResourceType } from '../fhir/definitions.js';

/** A resource with its search index, as the matcher looks at it (the same fields the stored documents carry). */
export type IndexedResource = Partial<SearchIndex> & { _id: string; json: string | null };

/** Subscription criteria compiled once: a test per search parameter, all evaluated in memory on a resource's index. */
export interface CompiledCriteria {
  resourceType: string;
  text: string;
  matches(doc: IndexedResource): boolean;
}

/** Parameters that shape a result page rather than select resources, or need a query across resources. */
const NOT_SELECTING = new Set(['_count', '_sort', '_include', '_revinclude', '_summary', '_elements', '_total', '_contained', '_containedType', '_format', '_pretty']);
const UNSUPPORTED = new Set(['_has', '_lastUpdated', '_text', '_content', '_filter', '_list', '_query', '_type']);

/**
 * Compiles `Type?param=value&…` (or `param=value&…` when the type is given) into an in-memory matcher built from
 * the search engine's own conditions, so a subscription matches exactly what the search would find, without a
 * query per subscription and change. Criteria the matcher cannot evaluate on one resource (chains, `_has`,
 * `_lastUpdated`, result parameters) are refused with 422; malformed values with the engine's 400.
 */
export function compileCriteria(registry: SearchParameterRegistry, text: string, opts: { type?: string; baseUrl?: string; what?: string } = {}): CompiledCriteria {
  const what = opts.what ?? 'Subscription.criteria';
  const q = text.indexOf('?');
  const head = q < 0 ? text : text.slice(0, q);
  const query = q < 0 ? '' : text.slice(q + 1);
  let type: string;
  if (/^[A-Z][A-Za-z]+$/.test(head)) {
    type = head;
    if (!isResourceType(type)) throw errors.businessRule(`${what}: '${type}' is not an R4 resource type`);
    if (opts.type && type !== opts.type) throw errors.businessRule(`${what}: '${text}' must be about ${opts.type}, not ${type}`);
  } else if (opts.type && q < 0 && head.includes('=')) {
    type = opts.type;
  } else {
    throw errors.businessRule(`${what}: '${text}' is not a search such as Observation?code=http://loinc.org|1234-5`);
  }
  const raw = q < 0 && type === opts.type && head.includes('=') ? head : query;
  const tests: ((d: IndexedResource) => boolean)[] = [];
  for (const [name, value] of new URLSearchParams(raw)) {
    const [code, modifier] = splitModifier(name);
    if (NOT_SELECTING.has(code)) throw errors.businessRule(`${what}: ${code} shapes search results and cannot select notifications`);
    if (UNSUPPORTED.has(code) || code.includes('.')) throw errors.businessRule(`${what}: ${name} is not supported in subscription criteria (it needs a query across resources)`);
    if (code === '_id') {
      if (modifier) throw errors.businessRule(`${what}: _id takes no modifier`);
      const ids = value.split(',');
      tests.push((d) => ids.includes(d._id));
      continue;
    }
    const def = registry.get(type, code);
    if (!def) throw errors.businessRule(`${what}: ${type} has no search parameter '${code}'`);
    let cond: Condition;
    try {
      cond = paramCondition(def, modifier, value, { baseUrl: opts.baseUrl });
    } catch (err) {
      if (err instanceof UnsupportedCriterion) throw errors.businessRule(`${what}: ${err.message}`);
      if (isOperationOutcomeError(err)) throw err;
      throw err;
    }
    if (cond.needsJson && !cond.post) throw errors.businessRule(`${what}: ${name} is not supported in subscription criteria`);
    if (cond.filter) checkFilter(cond.filter, what, name);
    tests.push(conditionTest(cond));
  }
  return { resourceType: type, text, matches: (d) => tests.every((t) => t(d)) };
}

/** Index + text of a resource for the matcher. */
export function indexed(indexer: Indexer, id: string, resource: Record<string, unknown>): IndexedResource {
  return { ...indexer(resource), _id: id, json: JSON.stringify(resource) };
}

function conditionTest(c: Condition): (d: IndexedResource) => boolean {
  const parts: ((d: IndexedResource) => boolean)[] = [];
  if (c.eq) {
    const { field, values } = c.eq;
    parts.push((d) => values.some((v) => fieldValues(d, field).includes(v)));
  }
  if (c.filter) {
    const f = c.filter;
    parts.push((d) => evalFilter(f, d));
  }
  if (c.post) parts.push(c.post as (d: IndexedResource) => boolean);
  return (d) => parts.every((p) => p(d));
}

const fieldValues = (d: IndexedResource, field: string): unknown[] => {
  const v = (d as Record<string, unknown>)[field];
  return Array.isArray(v) ? v : v === undefined ? [] : [v];
};

const OPS = new Set(['$in', '$ne', '$regex', '$elemMatch', '$gte', '$gt', '$lt', '$lte', '$nin']);

/** Refuses (422) filters using operators the in-memory evaluator does not know, at subscription creation. */
function checkFilter(filter: Record<string, unknown>, what: string, name: string): void {
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$or' || key === '$and' || key === '$nor') {
      for (const f of value as Record<string, unknown>[]) checkFilter(f, what, name);
      continue;
    }
    if (key.startsWith('$')) throw errors.businessRule(`${what}: ${name} is not supported in subscription criteria`);
    if (value && typeof value === 'object' && !(value instanceof Date)) {
      for (const op of Object.keys(value)) {
        if (!OPS.has(op)) throw errors.businessRule(`${what}: ${name} is not supported in subscription criteria`);
        if (op === '$elemMatch') for (const inner of Object.keys((value as Record<string, object>)[op]!)) if (!OPS.has(inner)) throw errors.businessRule(`${what}: ${name} is not supported in subscription criteria`);
      }
    }
  }
}

/** Evaluates the subset of MongoDB query operators the search conditions use, on the index arrays of one resource. */
function evalFilter(filter: Record<string, unknown>, d: IndexedResource): boolean {
  return Object.entries(filter).every(([key, spec]) => {
    if (key === '$or') return (spec as Record<string, unknown>[]).some((f) => evalFilter(f, d));
    if (key === '$and') return (spec as Record<string, unknown>[]).every((f) => evalFilter(f, d));
    if (key === '$nor') return !(spec as Record<string, unknown>[]).some((f) => evalFilter(f, d));
    const values = fieldValues(d, key);
    if (spec === null || typeof spec !== 'object' || spec instanceof Date) return values.includes(spec);
    return valueOps(spec as Record<string, unknown>, values);
  });
}

function valueOps(ops: Record<string, unknown>, values: unknown[]): boolean {
  return Object.entries(ops).every(([op, arg]) => {
    switch (op) {
      case '$in':
        return (arg as unknown[]).some((a) => values.includes(a));
      case '$nin':
        return !(arg as unknown[]).some((a) => values.includes(a));
      case '$ne':
        return !values.includes(arg);
      case '$regex': {
        const re = new RegExp(arg as string);
        return values.some((v) => typeof v === 'string' && re.test(v));
      }
      case '$elemMatch':
        return values.some((v) => valueOps(arg as Record<string, unknown>, [v]));
      case '$gte':
        return values.some((v) => (v as string) >= (arg as string));
      case '$gt':
        return values.some((v) => (v as string) > (arg as string));
      case '$lt':
        return values.some((v) => (v as string) < (arg as string));
      case '$lte':
        return values.some((v) => (v as string) <= (arg as string));
      default:
        return false;
    }
  });
}
