import type { Organization } from '@medplum/fhirtypes';
import type { AccessContext } from '../auth/access-policy.js';
import { errors, isOperationOutcomeError } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';

const TIMEZONE_URL = 'http://hl7.org/fhir/StructureDefinition/timezone';

/** Whose figures: one Organization (its id and time zone) or the whole system (`org` undefined). */
export interface AnalyticsScope {
  org?: string;
  name?: string;
  timezone: string;
  /** Cache and report key: the org id or `*`. */
  key: string;
}

/** A system administrator's token, or a backend service's with system/ read scopes (not an insurer's). */
export function isSystemAdministrator(access: AccessContext | undefined): boolean {
  if (!access) return false;
  if (access.role === 'system-admin') return true;
  return !access.accountId && !access.payor && access.scopes.some((s) => s.context === 'system' && s.permissions.has('r'));
}

/** Refuses, before anything is read, callers who may not see the figures of `orgId` (or of the system). */
export function checkAccess(access: AccessContext | undefined, orgId: string | undefined): void {
  if (!access) throw errors.unauthorized('An access token is needed');
  if (isSystemAdministrator(access)) return;
  if (orgId && access.role === 'hospital-admin') {
    if (access.organization === `Organization/${orgId}`) return;
    throw errors.forbidden(`Only administrators of Organization/${orgId} (or system administrators) see its analytics`);
  }
  throw errors.forbidden(orgId ? `Only administrators of Organization/${orgId} (or system administrators) see its analytics` : 'System-wide analytics are for system administrators; hospital administrators use Organization/[id]/$analytics');
}

/** The scope of a request (after checkAccess): the Organization must exist (404) and its time zone is the default. */
export async function resolveScope(system: FhirRepository, orgId: string | undefined, timezone: string | undefined): Promise<AnalyticsScope> {
  if (!orgId) return { timezone: timezone ?? 'UTC', key: '*' };
  let org: Organization;
  try {
    org = parseResource(await system.read('Organization', orgId)) as Organization;
  } catch (err) {
    if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) throw errors.notFound(`Organization/${orgId} is not known`);
    throw err;
  }
  const tz = org.extension?.find((e) => e.url === TIMEZONE_URL)?.valueCode;
  return { org: orgId, name: org.name, timezone: timezone ?? tz ?? 'UTC', key: orgId };
}
