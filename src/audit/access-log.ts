import type { AuditEvent, Bundle } from '@medplum/fhirtypes';
import { errors } from '../fhir/outcomes.js';
import { paramValue, type BusinessOperation } from '../fhir/operations/registry.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { isAuditor } from './audit-trail.js';
import { AUDIT_TYPE } from './store.js';

const MAX = 200;

/**
 * `Patient/[id]/$access-log`: who accessed this patient's record, newest first, for the patient themself
 * (and system administrators); anyone else gets a 403. Agents' network addresses and every entity but the
 * patient themself (other patients, resources, queries) are left out.
 */
export function accessLogOperation(system: () => FhirRepository): BusinessOperation {
  return {
    name: 'access-log',
    levels: ['instance'],
    resourceTypes: ['Patient'],
    methods: ['GET'],
    affectsState: false,
    description: 'Who accessed this patient\'s record (read, searched, changed, exported it), newest first: a searchset Bundle of AuditEvents, for the patient themself.',
    parameters: [
      { name: '_count', use: 'in', min: 0, max: '1', type: 'integer', documentation: `How many events (default 50, at most ${MAX})` },
      { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A searchset Bundle of AuditEvents naming the patient' },
    ],
    access: (access, target) => {
      if (!access) throw errors.unauthorized('An access token is required');
      const own = access.role === 'patient' && access.fhirUser === `Patient/${target.id}`;
      if (!own && !isAuditor(access)) throw errors.forbidden('Only the patient themself may list who accessed their record');
    },
    handler: async (input) => {
      const raw = paramValue(input, '_count') ?? '50';
      if (!/^\d{1,4}$/.test(raw)) throw errors.badRequest(`_count must be a number, not '${raw}'`);
      const count = Math.min(Math.max(Number(raw), 1), MAX);
      const found = await system().search({ types: [AUDIT_TYPE], params: [['patient', `Patient/${input.target.id}`], ['_sort', '-_lastUpdated'], ['_count', String(count)]] });
      const entry = found.matches.map((d) => {
        const e = JSON.parse(d.json!) as AuditEvent;
        for (const a of e.agent ?? []) delete a.network;
        // A record may name others too (a search's other patients, reads aggregated in one window): only this
        // patient's own entry stays, nothing about anyone else (no other resources, queries or request ids).
        const own = `Patient/${input.target.id}`;
        e.entity = (e.entity ?? []).filter((x) => x.what?.reference === own || x.what?.reference?.startsWith(`${own}/`));
        delete e.outcomeDesc;
        return { fullUrl: `urn:uuid:${e.id}`, resource: e, search: { mode: 'match' as const } };
      });
      const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', ...(found.total !== undefined ? { total: found.total } : {}), entry };
      return { resource: bundle };
    },
  };
}
