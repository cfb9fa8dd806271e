import type { Bundle, BundleEntry, BundleLink, Resource } from '@medplum/fhirtypes';
import { getStructure, isResourceType } from '../../definitions.js';
import { errors, outcome } from '../../outcomes.js';
import type { SearchRequest, SearchResult } from '../../search/engine.js';
import type { CurrentDoc } from '../../storage/mongo/documents.js';
import type { FhirRequest, Handler } from '../types.js';

/**
 * Search (R4 3.1.1): `GET [type]`, `POST [type]/_search`, system-level `GET /?_type=…` and compartment
 * search `GET Patient/[id]/[type]`. Builds the searchset Bundle: paging links, `search.mode` on every entry,
 * an OperationOutcome entry whenever the answer is not exactly what was asked, `_summary` and `_elements`.
 */
export const search: Handler = async (req, ctx, params) => {
  const query = searchParams(req);
  let types: string[];
  let compartment: SearchRequest['compartment'];
  let path: string;
  if (params.compartmentType) {
    if (params.type !== 'Patient') throw errors.notFound(`Compartment search is defined for the Patient compartment, not ${params.type}`);
    if (!isResourceType(params.compartmentType)) throw errors.notFound(`Unknown resource type '${params.compartmentType}'`);
    types = [params.compartmentType];
    compartment = { type: params.type, id: params.id! };
    path = `${params.type}/${params.id}/${params.compartmentType}`;
  } else if (params.type) {
    types = [params.type];
    path = params.type;
  } else {
    const listed = query.filter(([k]) => k === '_type').flatMap(([, v]) => v.split(',')).map((t) => t.trim()).filter(Boolean);
    for (const t of listed) if (!isResourceType(t)) throw errors.badRequest(`_type '${t}' is not a resource type`);
    types = listed.length ? [...new Set(listed)] : await ctx.repo.storedTypes();
    path = '';
  }
  const strict = /handling\s*=\s*strict/i.test(req.headers.prefer ?? '');
  const result = await ctx.repo.search({ types, params: query, baseUrl: req.baseUrl, strict, compartment });
  return { status: 200, body: toBundle(result, `${req.baseUrl}${path ? `/${path}` : ''}`, query) };
};

/** Query parameters, plus the form body of POST …/_search (R4 3.1.1.0: both together). */
function searchParams(req: FhirRequest): [string, string][] {
  const all = [...req.query];
  if (req.method === 'POST') {
    if (req.body instanceof URLSearchParams) all.push(...req.body);
    else if (req.body !== undefined && req.body !== null && req.body !== '') throw errors.unsupportedMediaType('POST …/_search takes application/x-www-form-urlencoded parameters');
  }
  for (const [k, v] of all) {
    if (k.length > 200 || v.length > 4000) throw errors.badRequest(`Search parameter '${k.slice(0, 50)}' is too long`);
  }
  return all;
}

function toBundle(result: SearchResult, base: string, query: [string, string][]): Bundle {
  const url = (extra: [string, string][]) => {
    const q = new URLSearchParams([...result.applied, ...extra]).toString();
    return q ? `${base}?${q}` : base;
  };
  const cursor = query.find(([k]) => k === '_cursor')?.[1];
  const link: BundleLink[] = [{ relation: 'self', url: url(cursor ? [['_cursor', cursor]] : []) }, { relation: 'first', url: url([]) }];
  if (result.previous) link.push({ relation: 'previous', url: url([['_cursor', result.previous]]) });
  if (result.next) link.push({ relation: 'next', url: url([['_cursor', result.next]]) });
  const baseUrl = base.replace(/\/(?:Patient\/[^/]+\/)?[A-Z][A-Za-z]+$/, '');
  const shape = shaper(result);
  const entry: BundleEntry[] = [
    ...result.matches.map((d) => ({ fullUrl: `${baseUrl}/${d.t}/${d.id}`, resource: shape(d), search: { mode: 'match' as const } })),
    ...result.included.map((d) => ({ fullUrl: `${baseUrl}/${d.t}/${d.id}`, resource: shape(d), search: { mode: 'include' as const } })),
  ];
  if (result.issues.length) entry.push({ resource: outcome(result.issues), search: { mode: 'outcome' as never } });
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    ...(result.total !== undefined ? { total: result.total } : {}),
    link,
    ...(entry.length ? { entry } : {}),
  };
}

const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED', display: 'subsetted' };

/** `_summary` (true, text, data) and `_elements` (R4 3.1.1.5.7-8): keeps a subset and marks it SUBSETTED. */
function shaper(result: SearchResult): (d: CurrentDoc) => Resource {
  const { summary, elements } = result;
  return (d) => {
    const resource = JSON.parse(d.json!) as Resource & Record<string, unknown>;
    let keep: ((key: string) => boolean) | undefined;
    if (elements?.length) keep = (k) => elements.includes(k) || mandatory(d.t).has(k);
    else if (summary === 'true') keep = (k) => summaryElements(d.t).has(k);
    else if (summary === 'text') keep = (k) => k === 'text' || mandatory(d.t).has(k);
    else if (summary === 'data') keep = (k) => k !== 'text';
    if (!keep) return resource;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(resource)) if (k === 'resourceType' || k === 'id' || k === 'meta' || keep(k)) out[k] = v;
    const meta = { ...(resource.meta ?? {}) } as Record<string, unknown>;
    meta.tag = [...((meta.tag as unknown[]) ?? []), SUBSETTED];
    out.meta = meta;
    return out as unknown as Resource;
  };
}

const summaryCache = new Map<string, Set<string>>();
const mandatoryCache = new Map<string, Set<string>>();

function topLevel(type: string, pick: (e: { isSummary?: boolean; min?: number }) => boolean, cache: Map<string, Set<string>>): Set<string> {
  let set = cache.get(type);
  if (!set) {
    set = new Set();
    for (const e of getStructure(type)?.snapshot?.element ?? []) {
      const parts = e.path?.split('.') ?? [];
      if (parts.length === 2 && pick(e)) set.add(parts[1]!.replace('[x]', ''));
    }
    // choice elements ([x]) appear with their type suffix in instances: keep every key starting with the stem
    cache.set(type, set);
  }
  return set;
}
function summaryElements(type: string): { has: (k: string) => boolean } {
  const s = topLevel(type, (e) => !!e.isSummary, summaryCache);
  return { has: (k) => s.has(k) || [...s].some((stem) => k.startsWith(stem) && /^[A-Z]/.test(k.slice(stem.length))) };
}
function mandatory(type: string): { has: (k: string) => boolean } {
  const s = topLevel(type, (e) => (e.min ?? 0) > 0, mandatoryCache);
  return { has: (k) => s.has(k) || [...s].some((stem) => k.startsWith(stem) && /^[A-Z]/.test(k.slice(stem.length))) };
}
