import { evalFhirPathTyped, getSearchParameters, parseFhirPath, type FhirPathAtom, type TypedValue } from '@medplum/core';
import { tokenKeys, SEP, type SearchIndex } from './index-entry.js';

/** The parameter kinds this index serves (the other R4 types belong to the full search engine). */
export type IndexedKind = 'reference' | 'token';

interface IndexedParam {
  code: string;
  kind: IndexedKind;
  expression: FhirPathAtom;
}

const byType = new Map<string, IndexedParam[]>();

/** Reference and token search parameters of a type, FHIRPath parsed once (R4 SearchParameter definitions). */
function indexedParams(type: string): IndexedParam[] {
  let params = byType.get(type);
  if (!params) {
    params = Object.values(getSearchParameters(type) ?? {})
      .filter((sp) => (sp.type === 'reference' || sp.type === 'token') && sp.expression && sp.code)
      .map((sp) => ({ code: sp.code!, kind: sp.type as IndexedKind, expression: parseFhirPath(forType(sp.expression!, type)) }));
    byType.set(type, params);
  }
  return params;
}

/**
 * The branches of a shared parameter's expression that apply to `type`: `patient` is one union over ~30
 * types ("AllergyIntolerance.patient | CarePlan.subject.where(…) | …"); evaluating only this type's branch
 * makes indexing several times cheaper.
 */
function forType(expression: string, type: string): string {
  const branches = expression.split(/\s\|\s/);
  const own = branches.filter((b) => new RegExp(`^\\(?${type}[.\\s)]`).test(b.trim()));
  return own.length ? own.join(' | ') : expression;
}

/** `Type/id` of a relative or absolute literal reference, without a version; undefined for others. */
export function normalizeReference(ref: string): string | undefined {
  const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(ref);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

/** Key of a reference value for parameter `code`: `code SEP Type/id`. */
export function referenceKey(code: string, target: string): string {
  return `${code}${SEP}${target}`;
}

/**
 * The search index of a resource: every token parameter (R4 3.1.1.4.9: codes, Codings, CodeableConcepts,
 * Identifiers, ContactPoints, booleans) and every reference parameter, so `status=final`,
 * `identifier=sys|v`, `subject=Patient/1` and compartment queries such as Patient/$everything are index lookups.
 */
export function basicIndex(resource: Record<string, unknown>): SearchIndex {
  const tk: string[] = [];
  const type = resource.resourceType;
  if (typeof type === 'string') {
    // Typed once for all parameters: converting the input is most of a FHIRPath evaluation's cost.
    const input: TypedValue[] = [{ type, value: resource }];
    for (const p of indexedParams(type)) {
      let values: TypedValue[];
      try {
        values = evalFhirPathTyped(p.expression, input);
      } catch {
        continue; // an expression that cannot apply to this content indexes nothing
      }
      for (const t of values) {
        if (p.kind === 'token') {
          tk.push(...tokenValueKeys(p.code, t));
          continue;
        }
        const ref = typeof t.value === 'object' && t.value !== null ? (t.value as { reference?: unknown }).reference : undefined;
        const target = typeof ref === 'string' ? normalizeReference(ref) : undefined;
        if (target) tk.push(referenceKey(p.code, target));
      }
    }
  }
  return { tk: [...new Set(tk)] };
}

/** The kind of an indexed search parameter of `type`, or undefined when this index does not serve it. */
export function indexedKind(type: string, code: string): IndexedKind | undefined {
  return indexedParams(type).find((p) => p.code === code)?.kind;
}

type Coded = { system?: unknown; code?: unknown; value?: unknown; coding?: unknown };
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** Keys of one token value by its FHIR type (R4 3.1.1.4.9 lists what a token matches for each type). */
function tokenValueKeys(code: string, t: TypedValue): string[] {
  const v = t.value as Coded | string | boolean | number;
  if (typeof v === 'boolean' || typeof v === 'number') return tokenKeys(code, undefined, String(v));
  if (typeof v === 'string') return tokenKeys(code, undefined, v);
  if (!v || typeof v !== 'object') return [];
  switch (t.type) {
    case 'CodeableConcept':
      return (Array.isArray(v.coding) ? (v.coding as Coded[]) : []).flatMap((c) => (str(c.code) ? tokenKeys(code, str(c.system), str(c.code)) : []));
    case 'Identifier':
      return str(v.value) ? tokenKeys(code, str(v.system), str(v.value)) : [];
    case 'ContactPoint':
      return str(v.value) ? tokenKeys(code, undefined, str(v.value)) : [];
    default:
      return str(v.code) ? tokenKeys(code, str(v.system), str(v.code)) : [];
  }
}
