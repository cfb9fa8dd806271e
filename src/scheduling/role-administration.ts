import type { Parameters, PractitionerRole } from '@medplum/fhirtypes';
import { errors } from '../fhir/outcomes.js';
import type { AccessContext } from '../auth/access-policy.js';
import type { FhirRequest } from '../fhir/rest/types.js';

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

/** Operation inputs from a Parameters body and the query string (query wins, as for GET operations). */
export function operationParams(req: FhirRequest): Map<string, string> {
  const out = new Map<string, string>();
  const body = req.body as Parameters | undefined;
  if (body && typeof body === 'object' && !(body instanceof URLSearchParams) && Object.keys(body).length) {
    if (body.resourceType !== 'Parameters') throw errors.badRequest('The body of this operation must be a Parameters resource');
    for (const p of body.parameter ?? []) {
      const v = p.valueCode ?? p.valueString ?? p.valueDateTime ?? p.valueInstant ?? p.valueDate ?? (p.valueInteger !== undefined ? String(p.valueInteger) : undefined);
      if (p.name && typeof v === 'string') out.set(p.name, v);
    }
  }
  for (const [k, v] of req.query) out.set(k, v);
  return out;
}
