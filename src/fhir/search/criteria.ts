import { errors } from '../outcomes.js';
import { tokenKeys, tokenQueryKey, type SearchIndex } from './index-entry.js';

/** A Mongo filter over current documents; values are always plain strings/numbers built here, never client objects. */
export type CurrentFilter = Record<string, unknown>;

/**
 * Translates search criteria (the query string of a conditional create/update/delete) into a filter.
 * Empty criteria match every resource of the type. Supports `_id` and `identifier` (token: `code`, `system|code`, `|code`, `system|`); anything else is refused
 * with 400 rather than ignored, because ignoring a criterion of a conditional delete would widen it.
 */
export function criteriaToFilter(resourceType: string, criteria: string): CurrentFilter {
  const params = new URLSearchParams(criteria.startsWith('?') ? criteria.slice(1) : criteria);
  const and: CurrentFilter[] = [];
  for (const [name, value] of params) {
    if (name === '_id') {
      and.push({ id: { $in: splitOr(value) } });
    } else if (name === 'identifier') {
      and.push({ 'ix.tk': { $in: splitOr(value).map((v) => tokenQueryKey('identifier', v.replace(/\\\|/g, '|'))) } });
    } else if (name !== '_format' && name !== '_pretty') {
      throw errors.notSupported(`Search parameter '${name}' is not supported in conditional criteria for ${resourceType}`);
    }
  }
  return { t: resourceType, del: false, ...(and.length ? { $and: and } : {}) };
}

/** Comma separates alternatives; `\,` is a literal comma (R4 3.1.1.4.8 escaping). */
export function splitOr(value: string): string[] {
  return value.split(/(?<!\\),/).map((v) => v.replace(/\\([,|$\\])/g, '$1'));
}

/** Search index with `identifier` keys only (used until the full search indexer covers every parameter). */
export function identifierIndex(resource: Record<string, unknown>): SearchIndex {
  const ids = resource.identifier;
  const list = Array.isArray(ids) ? ids : ids && typeof ids === 'object' ? [ids] : [];
  const tk: string[] = [];
  for (const ident of list as { system?: unknown; value?: unknown }[]) {
    if (typeof ident?.value !== 'string') continue;
    tk.push(...tokenKeys('identifier', typeof ident.system === 'string' ? ident.system : undefined, ident.value));
  }
  return { tk };
}
