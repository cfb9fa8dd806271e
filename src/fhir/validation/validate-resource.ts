import { validateResource as validateStructure, OperationOutcomeError as MedplumOutcomeError } from '@medplum/core';
import type { OperationOutcomeIssue, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { isResourceType } from '../definitions.js';
import { FHIR_ID } from '../storage/types.js';
import { checkRequiredBindings } from './required-bindings.js';
import { getProfile } from './profiles.js';

/**
 * Every validation issue of a resource, never throwing for bad input: the R4 base definition (types,
 * cardinality, unknown elements, invariants), required bindings, and each profile of `profiles/` that the
 * resource claims in `meta.profile`. A claimed profile we do not know is a warning, not an error.
 */
export function validateResource(resource: unknown): OperationOutcomeIssue[] {
  if (!resource || typeof resource !== 'object' || Array.isArray(resource)) return [error('structure', 'A resource must be a JSON object', [])];
  const r = resource as Resource & { meta?: { profile?: unknown } };
  if (typeof r.resourceType !== 'string' || !isResourceType(r.resourceType)) {
    return [error('structure', `'${String(r.resourceType)}' is not an R4 resource type`, ['resourceType'])];
  }
  const issues: OperationOutcomeIssue[] = [];
  if (r.id !== undefined && (typeof r.id !== 'string' || !FHIR_ID.test(r.id))) issues.push(error('value', `'${String(r.id)}' is not a valid id`, [`${r.resourceType}.id`]));
  issues.push(...structureIssues(r));
  issues.push(...checkRequiredBindings(r as unknown as Record<string, unknown>));
  const claimed = Array.isArray(r.meta?.profile) ? (r.meta!.profile as unknown[]).filter((p): p is string => typeof p === 'string') : [];
  for (const url of claimed) {
    const profile = getProfile(url);
    if (!profile) issues.push({ severity: 'warning', code: 'not-supported', details: { text: `Profile ${url} is not known to this server and was not checked` }, expression: [`${r.resourceType}.meta.profile`] });
    else if (profile.type !== r.resourceType) issues.push(error('invalid', `Profile ${url} is for ${profile.type}, not ${r.resourceType}`, [`${r.resourceType}.meta.profile`]));
    else issues.push(...structureIssues(r, profile).map((i) => ({ ...i, diagnostics: [i.diagnostics, `profile ${url}`].filter(Boolean).join('; ') })));
  }
  return dedupe(issues);
}

function structureIssues(r: Resource, profile?: StructureDefinition): OperationOutcomeIssue[] {
  try {
    return validateStructure(r, profile ? { profile } : undefined).filter((i) => !whitespaceInBase64(r, i));
  } catch (err) {
    if (err instanceof MedplumOutcomeError) return (err.outcome.issue ?? []).filter((i) => !whitespaceInBase64(r, i));
    return [error('invalid', `The resource could not be validated: ${(err as Error).message}`, [r.resourceType])];
  }
}

/** R4 base64Binary (RFC 4648 base64, whose groups R4's regex lets whitespace separate: `(\\s*([0-9a-zA-Z\\+\\=]){4}\\s*)+`). */
const BASE64_GROUPS = /^(\s*[0-9a-zA-Z+/=]{4}\s*)+$/;

/**
 * Medplum's validator refuses base64Binary with whitespace between the groups, which R4 allows (the official
 * example DiagnosticReport-gingival-mass has line breaks in its PDF): such an issue is dropped when the value at
 * its path is base64 once the whitespace is ignored.
 */
function whitespaceInBase64(r: Resource, issue: OperationOutcomeIssue): boolean {
  if (issue.details?.text !== 'Invalid base64Binary format' || issue.expression?.length !== 1) return false;
  const value = valueAt(r, issue.expression[0]!);
  return typeof value === 'string' && /\s/.test(value) && BASE64_GROUPS.test(value);
}

/** The value at a simple element path such as `DiagnosticReport.presentedForm[0].data`. */
function valueAt(r: Resource, path: string): unknown {
  let node: unknown = r;
  for (const part of path.split('.').slice(1)) {
    const m = /^([A-Za-z0-9_]+)(?:\[(\d+)\])?$/.exec(part);
    if (!m || typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[m[1]!];
    if (m[2] !== undefined) node = Array.isArray(node) ? node[Number(m[2])] : undefined;
  }
  return node;
}

function error(code: OperationOutcomeIssue['code'], text: string, expression: string[]): OperationOutcomeIssue {
  return { severity: 'error', code, details: { text }, expression };
}

/** A profile re-reports the base's issues: keep each (text, location) once. */
function dedupe(issues: OperationOutcomeIssue[]): OperationOutcomeIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.severity}|${i.details?.text}|${(i.expression ?? []).join(',')}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
