import type { ElementDefinition, OperationOutcomeIssue } from '@medplum/fhirtypes';
import { getStructure } from '../definitions.js';
import { expandValueSet, type CodeSet } from './value-sets.js';

interface ElementInfo {
  def: ElementDefinition;
  /** Codes allowed by a required binding, when enumerable. */
  codes?: CodeSet;
}

const indexes = new Map<string, Map<string, ElementInfo>>();

/** Element definitions of a base structure by path, with their required bindings expanded (computed once). */
function elementsOf(type: string): Map<string, ElementInfo> | undefined {
  let index = indexes.get(type);
  if (index) return index;
  const sd = getStructure(type);
  if (!sd?.snapshot?.element) return undefined;
  index = new Map();
  for (const def of sd.snapshot.element) {
    const b = def.binding;
    const codes = b?.strength === 'required' && b.valueSet ? expandValueSet(b.valueSet) : undefined;
    index.set(def.path!, { def, codes });
  }
  indexes.set(type, index);
  return index;
}

const COMPLEX_INLINE = new Set(['BackboneElement', 'Element']);

/**
 * Checks every coded element bound `required` to an enumerable value set, anywhere in a resource
 * (datatypes such as ContactPoint.system, backbone elements, contained resources included).
 * Medplum's structural validator does not check bindings; these are the ones R4 says SHALL hold.
 */
export function checkRequiredBindings(resource: Record<string, unknown>): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const type = resource.resourceType;
  if (typeof type === 'string') walk(resource, type, type, type, issues);
  return issues;
}

function walk(value: Record<string, unknown>, structure: string, path: string, expr: string, issues: OperationOutcomeIssue[]): void {
  const elements = elementsOf(structure);
  if (!elements) return;
  for (const [key, v] of Object.entries(value)) {
    if (key === 'resourceType' || key.startsWith('_') || v === null || v === undefined) continue;
    const found = lookup(elements, path, key);
    if (!found) continue;
    const { info, typeCode } = found;
    const items = Array.isArray(v) ? v : [v];
    items.forEach((item, i) => {
      const at = `${expr}.${key}${Array.isArray(v) ? `[${i}]` : ''}`;
      if (info.codes) checkCode(item, typeCode, info.codes, at, issues);
      if (item === null || typeof item !== 'object') return;
      const obj = item as Record<string, unknown>;
      if (typeCode === 'Resource' && typeof obj.resourceType === 'string') walk(obj, obj.resourceType, obj.resourceType, at, issues);
      else if (info.def.contentReference) walk(obj, structure, info.def.contentReference.replace(/^#/, ''), at, issues);
      else if (COMPLEX_INLINE.has(typeCode)) walk(obj, structure, info.def.path!, at, issues);
      else if (/^[A-Z]/.test(typeCode)) walk(obj, typeCode, typeCode, at, issues);
    });
  }
}

/** Resolves `path.key`, including choice elements (`value[x]` for `valueQuantity`). */
function lookup(elements: Map<string, ElementInfo>, path: string, key: string): { info: ElementInfo; typeCode: string } | undefined {
  const direct = elements.get(`${path}.${key}`);
  if (direct) return { info: direct, typeCode: direct.def.type?.[0]?.code ?? (direct.def.contentReference ? 'BackboneElement' : '') };
  for (const t of elements.get(`${path}.${key.replace(/[A-Z].*$/, '')}[x]`)?.def.type ?? []) {
    const info = elements.get(`${path}.${key.replace(/[A-Z].*$/, '')}[x]`)!;
    if (key.endsWith(t.code!.charAt(0).toUpperCase() + t.code!.slice(1))) return { info, typeCode: t.code! };
  }
  return undefined;
}

function checkCode(item: unknown, typeCode: string, allowed: CodeSet, at: string, issues: OperationOutcomeIssue[]): void {
  const fail = (code: string, extra = '') =>
    issues.push({ severity: 'error', code: 'code-invalid', details: { text: `'${code}' is not in the required value set${extra}` }, expression: [at] });
  if (typeCode === 'code' && typeof item === 'string') {
    if (![...allowed.values()].some((codes) => codes.has(item))) fail(item);
  } else if (typeCode === 'Coding') {
    checkCoding(item as { system?: string; code?: string }, allowed, fail);
  } else if (typeCode === 'CodeableConcept') {
    const codings = ((item as { coding?: unknown }).coding ?? []) as { system?: string; code?: string }[];
    // R4: a required-bound CodeableConcept needs a coding from the value set when it has codings of its systems.
    if (Array.isArray(codings)) for (const c of codings) checkCoding(c, allowed, fail);
  }
}

function checkCoding(c: { system?: string; code?: string }, allowed: CodeSet, fail: (code: string, extra?: string) => void): void {
  if (!c || typeof c.code !== 'string' || typeof c.system !== 'string') return;
  const codes = allowed.get(c.system);
  if (codes && !codes.has(c.code)) fail(c.code, ` for system ${c.system}`);
}
