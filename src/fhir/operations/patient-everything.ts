import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { errors, isOperationOutcomeError } from '../outcomes.js';
import { collectReferences } from '../bundles/references.js';
import { normalizeReference } from '../search/indexer.js';
import { patientCompartment } from '../search/compartment.js';
import type { FhirRepository } from '../storage/repository.js';
import type { ResourceVersion } from '../storage/types.js';
import type { Handler } from '../rest/types.js';
import { parseCount } from '../rest/handlers/history.js';

/** Types R4 says $everything brings along when the compartment's resources refer to them. */
const REFERENCED = new Set(['Practitioner', 'PractitionerRole', 'Organization', 'Medication', 'Location']);
/** Most resources of one type a single $everything reads; beyond it the answer says it is incomplete. */
const PER_TYPE_LIMIT = 5000;


/**
 * Patient/[id]/$everything and Patient/$everything?_id=… (R4 OperationDefinition Patient-everything):
 * the patient, every resource of its compartment, and the practitioners, organizations, medications and
 * locations they refer to; `_since`, `_type` and `_count` with paging links.
 */
export const patientEverything: Handler = async (req, ctx, { type, id }) => {
  if (type !== 'Patient') throw errors.notFound(`$everything is defined for Patient, not ${type}`);
  const patientId = id ?? req.query.get('_id') ?? undefined;
  if (!patientId) throw errors.badRequest('Patient/$everything needs a patient: Patient/[id]/$everything or ?_id=[id]');
  const count = parseCount(req.query.get('_count'), ctx);
  const offset = parseOffset(req.query.get('_offset'));
  const since = parseSince(req.query.get('_since'));
  const types = parseTypes(req.query.get('_type'));

  const patient = await ctx.repo.read('Patient', patientId);
  const found = new Map<string, ResourceVersion>([[`Patient/${patient.id}`, patient]]);
  let truncated = false;
  const stored = new Set(await ctx.repo.storedTypes());
  const queries = [...patientCompartment()]
    .filter(([resourceType]) => stored.has(resourceType) && (!types || types.has(resourceType)))
    .flatMap(([resourceType, params]) => params.map((param) => [resourceType, param] as const));
  const results = await Promise.all(
    queries.map(([resourceType, param]) => ctx.repo.findByCriteria(resourceType, `${param}=Patient/${patient.id}`, PER_TYPE_LIMIT + 1).catch(skipUnsupported)),
  );
  for (const matches of results) {
    if (matches.length > PER_TYPE_LIMIT) truncated = true;
    for (const v of matches.slice(0, PER_TYPE_LIMIT)) found.set(`${v.resourceType}/${v.id}`, v);
  }
  await addReferenced(ctx.repo, found, types);

  const all = [...found.values()].filter((v) => !since || Date.parse(v.lastUpdated) >= since.getTime());
  all.sort((a, b) => (a.resourceType === 'Patient' ? -1 : b.resourceType === 'Patient' ? 1 : a.resourceType.localeCompare(b.resourceType) || a.id.localeCompare(b.id)));
  const page = all.slice(offset, offset + count);
  const link = (o: number) => {
    const q = new URLSearchParams(req.query);
    q.set('_offset', String(o));
    q.set('_count', String(count));
    return `${req.baseUrl}/Patient/${patient.id}/$everything?${q.toString()}`;
  };
  const entry: BundleEntry[] = page.map((v) => ({ fullUrl: `${req.baseUrl}/${v.resourceType}/${v.id}`, resource: JSON.parse(v.json!) as Resource, search: { mode: 'match' } }));
  if (truncated) {
    entry.push({ resource: { resourceType: 'OperationOutcome', issue: [{ severity: 'warning', code: 'too-costly', details: { text: `More than ${PER_TYPE_LIMIT} resources of one type: the result is incomplete; narrow it with _type or _since` } }] }, search: { mode: 'outcome' } });
  }
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'searchset',
    total: all.length,
    link: [
      { relation: 'self', url: link(offset) },
      { relation: 'first', url: link(0) },
      ...(offset > 0 ? [{ relation: 'previous', url: link(Math.max(0, offset - count)) }] : []),
      ...(offset + count < all.length ? [{ relation: 'next', url: link(offset + count) }] : []),
    ],
    entry,
  };
  return { status: 200, body: bundle };
};

/** A compartment parameter the search layer cannot evaluate yields nothing rather than failing the whole operation. */
function skipUnsupported(err: unknown): ResourceVersion[] {
  if (isOperationOutcomeError(err) && err.status === 400) return [];
  throw err;
}

async function addReferenced(repo: FhirRepository, found: Map<string, ResourceVersion>, types: Set<string> | undefined): Promise<void> {
  const wanted = new Set<string>();
  for (const v of found.values()) {
    for (const ref of collectReferences(JSON.parse(v.json!))) {
      const target = normalizeReference(ref);
      const t = target?.split('/')[0];
      if (target && t && REFERENCED.has(t) && !found.has(target) && (!types || types.has(t))) wanted.add(target);
    }
  }
  await Promise.all(
    [...wanted].map(async (target) => {
      const [t, id] = target.split('/') as [string, string];
      try {
        found.set(target, await repo.read(t, id));
      } catch (err) {
        // A dangling or deleted reference is not part of the record.
        if (!(isOperationOutcomeError(err) && (err.status === 404 || err.status === 410))) throw err;
      }
    }),
  );
}

function parseOffset(v: string | null): number {
  if (v === null || v === '') return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw errors.badRequest(`_offset must be a non-negative integer, not '${v}'`);
  return n;
}

function parseSince(v: string | null): Date | undefined {
  if (!v) return undefined;
  const d = new Date(v);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(v) || Number.isNaN(d.getTime())) {
    throw errors.badRequest(`_since must be an instant such as 2024-01-31T12:00:00Z, not '${v}'`);
  }
  return d;
}

function parseTypes(v: string | null): Set<string> | undefined {
  if (!v) return undefined;
  const types = new Set(v.split(',').map((t) => t.trim()));
  for (const t of types) if (t !== 'Patient' && !patientCompartment().has(t) && !REFERENCED.has(t)) throw errors.badRequest(`_type '${t}' is not in the Patient compartment`);
  types.add('Patient');
  return types;
}
