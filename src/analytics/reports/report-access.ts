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
 * could read a report whose id it learnt; in searches they are left out of the page (the total, when one is
 * counted, may still include them).
 */
export function confineReports(repo: FhirRepository, access: AccessContext): FhirRepository {
  if (isSystemAdministrator(access)) return repo;
  const allowed = (type: string, json: string | null): boolean => {
    if (!CONFINED.has(type) || !json || !json.includes(REPORT_TAG.code)) return true;
    const r = JSON.parse(json) as Resource & { securityContext?: { reference?: string }; custodian?: { reference?: string }; meta?: { tag?: { code?: string }[] } };
    if (!r.meta?.tag?.some((t) => t.code === REPORT_TAG.code)) return true;
    const org = r.resourceType === 'Binary' ? r.securityContext?.reference : r.custodian?.reference;
    return access.role === 'hospital-admin' && !!org && access.organization === org;
  };
  const check = (v: ResourceVersion): ResourceVersion => {
    if (allowed(v.resourceType, v.json)) return v;
    throw errors.notFound(`${v.resourceType}/${v.id} is not known`);
  };
  return new Proxy(repo, {
    get(target, prop, receiver) {
      if (prop === 'read') return async (type: string, id: string) => check(await target.read(type, id));
      if (prop === 'vread') return async (type: string, id: string, vid: string) => check(await target.vread(type, id, vid));
      if (prop === 'search') {
        // Reports of other Organizations are left out of searches (a page may come out shorter than _count).
        return async (req: Parameters<FhirRepository['search']>[0]) => {
          const res = await target.search(req);
          const keep = (d: { t: string; json: string | null }) => allowed(d.t, d.json);
          return { ...res, matches: res.matches.filter(keep), included: res.included.filter(keep) };
        };
      }
      if (prop === 'transaction') return (fn: (tx: FhirRepository) => Promise<unknown>) => target.transaction((tx) => fn(confineReports(tx, access)));
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
