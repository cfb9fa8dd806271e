import type { Resource } from '@medplum/fhirtypes';
import type { AccessContext } from '../../auth/access-policy.js';
import { errors } from '../../fhir/outcomes.js';
import type { FhirRepository } from '../../fhir/storage/repository.js';
import type { ResourceVersion } from '../../fhir/storage/types.js';
import { isSystemAdministrator } from '../scope.js';
import { REPORT_TAG } from './report-jobs.js';

const CONFINED = new Set(['Binary', 'DocumentReference']);

/**
 * A caller's repository in which a report's Binary and DocumentReference (tagged REPORT_TAG) read as
 * unknown unless the caller may see that report's figures: its Organization's administrators and system
 * administrators. Binary is outside the Patient compartment, so without this any token with a Binary scope
 * could read a report whose id it learnt. Searches of these types are left to the scopes (their ids are not
 * listed anywhere a non-administrator reaches).
 */
export function confineReports(repo: FhirRepository, access: AccessContext): FhirRepository {
  if (isSystemAdministrator(access)) return repo;
  const check = (v: ResourceVersion): ResourceVersion => {
    if (!CONFINED.has(v.resourceType) || !v.json || !v.json.includes(REPORT_TAG.code)) return v;
    const r = JSON.parse(v.json) as Resource & { securityContext?: { reference?: string }; custodian?: { reference?: string }; meta?: { tag?: { code?: string }[] } };
    if (!r.meta?.tag?.some((t) => t.code === REPORT_TAG.code)) return v;
    const org = r.resourceType === 'Binary' ? r.securityContext?.reference : r.custodian?.reference;
    if (access.role === 'hospital-admin' && org && access.organization === org) return v;
    throw errors.notFound(`${v.resourceType}/${v.id} is not known`);
  };
  return new Proxy(repo, {
    get(target, prop, receiver) {
      if (prop === 'read') return async (type: string, id: string) => check(await target.read(type, id));
      if (prop === 'vread') return async (type: string, id: string, vid: string) => check(await target.vread(type, id, vid));
      if (prop === 'transaction') return (fn: (tx: FhirRepository) => Promise<unknown>) => target.transaction((tx) => fn(confineReports(tx, access)));
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
