import type { OperationOutcome } from '@medplum/fhirtypes';
import type { AccessContext } from '../auth/access-policy.js';
import type { ResourceScope } from '../auth/smart-scopes.js';
import { errors, issue } from '../fhir/outcomes.js';
import { paramValues, type OperationContext, type OperationInput } from '../fhir/operations/registry.js';
import { patientCompartment } from '../fhir/search/compartment.js';
import { isResourceType } from '../fhir/definitions.js';
import type { TaskQuery } from './store.js';

/** The three spellings of NDJSON the Bulk Data IG requires a server to accept for `_outputFormat`. */
export const OUTPUT_FORMATS = ['application/fhir+ndjson', 'application/ndjson', 'ndjson'];
const KNOWN = new Set(['_outputFormat', '_since', '_type', '_typeFilter', '_elements', 'patient', '_format', '_pretty']);
/** Search result parameters a `_typeFilter` query may not use (IG: no `_include`, `_sort`). */
const RESULT_PARAMS = new Set(['_include', '_revinclude', '_sort', '_count', '_elements', '_summary', '_total', '_contained', '_containedType', '_cursor', '_type']);
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const TYPE = /^[A-Z][A-Za-z]+$/;

export type ExportLevel = 'system' | 'patient' | 'group';

export interface ExportPlan {
  level: ExportLevel;
  request: string;
  transactionTime: Date;
  elements?: string[];
  notes: OperationOutcome[];
  /** Per resource type, the searches whose union is exported. */
  types: { type: string; queries: TaskQuery[] }[];
}

const note = (text: string): OperationOutcome => ({ resourceType: 'OperationOutcome', issue: [issue('warning', 'not-supported', text)] });

/** Checks the asynchronous request headers the IG names (we require both, as the BDT's strict profile does). */
export function checkAsyncHeaders(headers: OperationInput['headers']): { lenient: boolean } {
  const prefer = (headers.prefer ?? '').toLowerCase();
  const accept = (headers.accept ?? '').toLowerCase();
  // Strict, as the IG allows: a client that does not name application/fhir+json (nothing, or only */*) is told so.
  if (!accept || (!accept.includes('application/fhir+json') && /^[\s*/,;=.0-9q]*$/.test(accept))) throw errors.badRequest('Bulk requests need the header Accept: application/fhir+json');
  if (!accept.includes('application/fhir+json')) throw errors.notAcceptable(`Accept '${headers.accept}' cannot be satisfied; bulk kick-off answers are application/fhir+json`);
  if (!/(^|[\s,;])respond-async($|[\s,;])/.test(prefer)) throw errors.badRequest('Bulk requests are asynchronous: send Prefer: respond-async');
  return { lenient: /handling\s*=\s*lenient/.test(prefer) };
}

/** Whether a scope lets a bulk request read and search a type; `systemOnly`: system/ scopes (and system administrators') only. */
function covers(access: AccessContext, type: string, systemOnly: boolean): boolean {
  return access.scopes.some((s: ResourceScope) =>
    (s.type === '*' || s.type === type) && s.permissions.has('r') && s.permissions.has('s') && !s.query.length &&
    (!systemOnly || s.context === 'system' || (s.context === 'user' && access.role === 'system-admin')));
}

/** Splits `_typeFilter` values into `Type?query` items (commas separate queries; a comma inside a query stays). */
function typeFilters(values: string[]): { type: string; params: [string, string][] }[] {
  return values.flatMap((v) => v.split(/,(?=[A-Z][A-Za-z]+\?)/)).filter(Boolean).map((raw) => {
    const q = raw.indexOf('?');
    const type = q < 0 ? raw : raw.slice(0, q);
    if (!TYPE.test(type) || q < 0) throw errors.badRequest(`_typeFilter '${raw}' must be a query Type?param=value`);
    const params = [...new URLSearchParams(raw.slice(q + 1))];
    for (const [k] of params) if (RESULT_PARAMS.has(k.split(':')[0]!)) throw errors.badRequest(`_typeFilter queries may not use ${k}`);
    return { type, params };
  });
}

/**
 * Validates a kick-off and plans the work: which types, which searches each, and what the manifest will say.
 * Everything the token cannot read is either refused (listed in `_type`) or left out (not listed).
 */
export async function planExport(level: ExportLevel, input: OperationInput, ctx: OperationContext): Promise<ExportPlan> {
  const { lenient } = checkAsyncHeaders(input.headers);
  const access = ctx.access;
  if (!access) throw errors.unauthorized('A bulk export needs an access token');
  const notes: OperationOutcome[] = [];
  const refuse = (text: string, status = 400) => {
    if (!lenient) throw errors.notSupported(text, status);
    notes.push(note(`${text}; ignored (Prefer: handling=lenient)`));
  };
  const params = input.parameters.parameter ?? [];
  for (const p of params) if (!KNOWN.has(p.name ?? '')) refuse(`The export parameter '${p.name}' is not supported`);
  const values = (name: string) => paramValues(input, name).flatMap((v) => (name === '_typeFilter' ? [v] : v.split(','))).map((v) => v.trim()).filter(Boolean);

  const format = values('_outputFormat').at(-1);
  if (format && !OUTPUT_FORMATS.includes(format)) throw errors.badRequest(`_outputFormat '${format}' is not supported; use application/fhir+ndjson`);
  const sinceRaw = values('_since').at(-1);
  if (sinceRaw !== undefined && (!INSTANT.test(sinceRaw) || Number.isNaN(Date.parse(sinceRaw)))) throw errors.badRequest(`_since must be a FHIR instant (e.g. 2024-01-01T00:00:00Z), not '${sinceRaw}'`);
  const patientsParam = values('patient').map((ref) => {
    const m = /^(?:.*\/)?Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref);
    if (!m) throw errors.badRequest(`patient must reference a Patient, not '${ref}'`);
    return m[1]!;
  });
  if (patientsParam.length && input.method !== 'POST') refuse('The patient parameter is only supported with POST');
  if (patientsParam.length && level === 'system') refuse('The patient parameter applies to Patient and Group exports');
  const usePatients = input.method === 'POST' && level !== 'system' ? patientsParam : [];

  const compartment = patientCompartment();
  const systemOnly = level === 'system';
  const stored = new Set(await ctx.repo.storedTypes());
  const requested = [...new Set(values('_type'))];
  let types: string[];
  if (requested.length) {
    types = [];
    for (const t of requested) {
      if (!TYPE.test(t) || !isResourceType(t)) refuse(`_type '${t}' is not a resource type this server exports`);
      else if (level !== 'system' && !compartment.has(t)) refuse(`${t} is not in the Patient compartment, so a ${level === 'group' ? 'Group' : 'Patient'} export has none`);
      else if (!covers(access, t, systemOnly)) throw errors.forbidden(`The access token's scopes do not allow to read and search ${t}${systemOnly ? ' (a system export needs system/ scopes, e.g. system/' + t + '.rs)' : ''}`);
      else types.push(t);
    }
  } else {
    types = [...stored].filter((t) => (level === 'system' || compartment.has(t)) && covers(access, t, systemOnly)).sort();
    if (!types.length && !access.scopes.some((s) => !systemOnly || s.context === 'system')) throw errors.forbidden('The access token has no scope that allows a bulk export');
  }
  const elements = values('_elements');
  for (const e of elements) if (!/^([A-Z][A-Za-z]+\.)?[a-z][A-Za-z0-9]*(\[x\])?$/.test(e)) throw errors.badRequest(`_elements '${e}' must be an element name or Type.element`);

  // _typeFilter: per type, OR-ed queries; types without a filter are exported whole.
  const filters = new Map<string, [string, string][][]>();
  for (const f of typeFilters(paramValues(input, '_typeFilter'))) {
    if (!types.includes(f.type)) {
      if (requested.length || !covers(access, f.type, systemOnly)) refuse(`_typeFilter on ${f.type}, which this export does not include`);
      continue;
    }
    // The criteria are checked now (unknown parameters are a 400 at kick-off, not a failed job).
    await ctx.repo.findByCriteria(f.type, new URLSearchParams(f.params).toString(), 0);
    filters.set(f.type, [...(filters.get(f.type) ?? []), f.params]);
  }

  let patients: string[] | undefined = usePatients.length ? [...new Set(usePatients)] : undefined;
  if (level === 'group') {
    const group = JSON.parse((await ctx.repo.read('Group', input.target.id!)).json!) as { member?: { entity?: { reference?: string }; inactive?: boolean }[] };
    const members = (group.member ?? []).filter((m) => !m.inactive).map((m) => /^(?:.*\/)?Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(m.entity?.reference ?? '')?.[1]).filter((x): x is string => !!x);
    patients = [...new Set(patients ? members.filter((m) => patients!.includes(m)) : members)];
  }
  patients?.sort();

  const transactionTime = new Date();
  const window: [string, string][] = [['_lastUpdated', `le${transactionTime.toISOString()}`]];
  if (sinceRaw) window.push(['_lastUpdated', `gt${new Date(sinceRaw).toISOString()}`]);
  const plan: ExportPlan['types'] = types.map((type) => {
    const fs = filters.get(type) ?? [[]];
    const base = fs.map((f, i) => ({ criteria: new URLSearchParams([...window, ...f]).toString(), filter: i }));
    const queries = patients ? patients.flatMap((patient) => base.map((b) => ({ ...b, patient }))) : base;
    return { type, queries };
  });
  const path = level === 'system' ? '$export' : level === 'patient' ? 'Patient/$export' : `Group/${input.target.id}/$export`;
  const query = input.method === 'GET' ? new URLSearchParams(params.map((p): [string, string] => [p.name!, String(p.valueString ?? '')])).toString() : '';
  return { level, request: `${ctx.baseUrl}/${path}${query ? `?${query}` : ''}`, transactionTime, elements: elements.length ? elements : undefined, notes, types: plan };
}

