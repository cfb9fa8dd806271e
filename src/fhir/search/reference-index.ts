import { evalFhirPathTyped, getSearchParameters, parseFhirPath, type FhirPathAtom, type TypedValue } from '@medplum/core';
import { tokenKeys, SEP, type SearchIndex } from './index-entry.js';

interface ReferenceParam {
  code: string;
  expression: FhirPathAtom;
}

const byType = new Map<string, ReferenceParam[]>();

/** Reference search parameters of a type with their FHIRPath parsed once (R4 SearchParameter definitions). */
function referenceParams(type: string): ReferenceParam[] {
  let params = byType.get(type);
  if (!params) {
    params = Object.values(getSearchParameters(type) ?? {})
      .filter((sp) => sp.type === 'reference' && sp.expression && sp.code)
      .map((sp) => ({ code: sp.code!, expression: parseFhirPath(forType(sp.expression!, type)) }));
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
 * The search index of a resource: identifier tokens and every reference search parameter (so compartment
 * queries such as Patient/$everything and `subject=Patient/1` are index lookups).
 */
export function basicIndex(resource: Record<string, unknown>): SearchIndex {
  const tk: string[] = [];
  const ids = resource.identifier;
  for (const ident of (Array.isArray(ids) ? ids : ids && typeof ids === 'object' ? [ids] : []) as { system?: unknown; value?: unknown }[]) {
    if (typeof ident?.value === 'string') tk.push(...tokenKeys('identifier', typeof ident.system === 'string' ? ident.system : undefined, ident.value));
  }
  const type = resource.resourceType;
  if (typeof type === 'string') {
    // Typed once for all parameters: converting the input is most of a FHIRPath evaluation's cost.
    const input: TypedValue[] = [{ type, value: resource }];
    for (const p of referenceParams(type)) {
      let values: unknown[];
      try {
        values = evalFhirPathTyped(p.expression, input).map((t) => t.value);
      } catch {
        continue; // an expression that cannot apply to this content indexes nothing
      }
      for (const v of values) {
        const ref = typeof v === 'object' && v !== null ? (v as { reference?: unknown }).reference : undefined;
        const target = typeof ref === 'string' ? normalizeReference(ref) : undefined;
        if (target) tk.push(referenceKey(p.code, target));
      }
    }
  }
  return { tk: [...new Set(tk)] };
}

/** True when `code` is a reference search parameter of `type`. */
export function isReferenceParam(type: string, code: string): boolean {
  return referenceParams(type).some((p) => p.code === code);
}
