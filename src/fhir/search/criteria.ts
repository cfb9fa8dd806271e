import { errors } from '../outcomes.js';
import { tokenQueryKey } from './index-entry.js';
import { indexedKind, normalizeReference, referenceKey } from './reference-index.js';

/** A Mongo filter over current documents; values are always plain strings/numbers built here, never client objects. */
export type CurrentFilter = Record<string, unknown>;

/**
 * Translates search criteria (the query string of a conditional create/update/delete) into a filter.
 * Empty criteria match every resource of the type. Supports `_id`, token and reference parameters (token: `code`, `system|code`, `|code`, `system|`); anything else is refused
 * with 400 rather than ignored, because ignoring a criterion of a conditional delete would widen it.
 */
export function criteriaToFilter(resourceType: string, criteria: string): CurrentFilter {
  const params = new URLSearchParams(criteria.startsWith('?') ? criteria.slice(1) : criteria);
  const and: CurrentFilter[] = [];
  for (const [name, value] of params) {
    if (name === '_id') {
      and.push({ id: { $in: splitOr(value) } });
    } else if (indexedKind(resourceType, name) === 'token') {
      // R4 3.1.1.4.9: code, system|code, |code, system| (modifiers belong to the full search engine).
      and.push({ 'ix.tk': { $in: splitRaw(value).map((v) => tokenQueryKey(name, v).replace(/\\([,|$\\])/g, '$1')) } });
    } else if (indexedKind(resourceType, name.replace(/:[A-Za-z]+$/, '')) === 'reference') {
      // R4 3.1.1.4.10: `Type/id` (or an absolute URL ending in it); a bare id needs the :Type modifier here.
      const code = name.replace(/:[A-Za-z]+$/, '');
      const modifierType = /:([A-Z][A-Za-z]+)$/.exec(name)?.[1];
      const keys = splitOr(value).map((v) => {
        const target = normalizeReference(v) ?? (modifierType && /^[A-Za-z0-9\-.]{1,64}$/.test(v) ? `${modifierType}/${v}` : undefined);
        if (!target) throw errors.badRequest(`'${v}' is not a reference such as Patient/123 (parameter ${name})`);
        return referenceKey(code, target);
      });
      and.push({ 'ix.tk': { $in: keys } });
    } else if (name !== '_format' && name !== '_pretty') {
      throw errors.notSupported(`Search parameter '${name}' is not supported in conditional criteria for ${resourceType}`);
    }
  }
  return { t: resourceType, del: false, ...(and.length ? { $and: and } : {}) };
}

/** Alternatives split on unescaped commas, escapes kept (token values still need them to find the `|`). */
function splitRaw(value: string): string[] {
  return value.split(/(?<!\\),/);
}

/** Comma separates alternatives; `\,` is a literal comma (R4 3.1.1.4.8 escaping). */
export function splitOr(value: string): string[] {
  return value.split(/(?<!\\),/).map((v) => v.replace(/\\([,|$\\])/g, '$1'));
}
