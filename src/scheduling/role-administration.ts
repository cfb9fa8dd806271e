import type { PractitionerRole } from '@medplum/fhirtypes';
import type { AccessContext } from '../auth/access-policy.js';
import type { OperationInput } from '../fhir/operations/registry.js';

/**
 * Who administers a PractitionerRole: system administrators, hospital administrators of the role's
 * organization, and backend services with system/ scopes (integrations acting for the operator).
 */
export function administers(access: AccessContext | undefined, role: PractitionerRole): boolean {
  if (!access) return false;
  if (access.role === 'system-admin') return true;
  if (access.role === 'hospital-admin') return !!access.organization && access.organization === role.organization?.reference;
  return !access.accountId && access.scopes.some((s) => s.context === 'system');
}

/** Operation inputs from the Parameters body and the query string (the query's come last, so they win, as for GET operations). */
export function operationParams(input: OperationInput): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of input.parameters.parameter ?? []) {
    const v = p.valueCode ?? p.valueString ?? p.valueDateTime ?? p.valueInstant ?? p.valueDate ?? (p.valueInteger !== undefined ? String(p.valueInteger) : undefined);
    if (p.name && typeof v === 'string') out.set(p.name, v);
  }
  return out;
}
