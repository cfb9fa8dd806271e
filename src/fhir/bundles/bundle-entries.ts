import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { errors } from '../outcomes.js';
import type { FhirRequest } from '../rest/types.js';
import { parseEntryUrl, type EntryTarget } from './entry-url.js';

export type EntryMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** One Bundle entry, checked and parsed. */
export interface PlannedEntry {
  index: number;
  method: EntryMethod;
  target: EntryTarget;
  fullUrl?: string;
  resource?: Resource;
  /** JSON Patch operations for PATCH entries (R4: a Binary with contentType application/json-patch+json). */
  patch?: unknown;
  ifMatch?: string;
  ifNoneExist?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
}

/** R4 3.1.0.11.2: DELETE first, then POST, then PUT/PATCH, then GET/HEAD. */
const ORDER: Record<EntryMethod, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };

export function processingOrder(entries: PlannedEntry[]): PlannedEntry[] {
  return [...entries].sort((a, b) => ORDER[a.method] - ORDER[b.method] || a.index - b.index);
}

/** Checks the Bundle's shape and parses every entry; every problem is a 400 naming the entry. */
export function planEntries(body: unknown, baseUrl: string, maxEntries: number): { type: 'batch' | 'transaction'; entries: PlannedEntry[] } {
  const bundle = body as Bundle;
  if (!bundle || typeof bundle !== 'object' || bundle.resourceType !== 'Bundle') throw errors.badRequest('POST to the base needs a Bundle of type batch or transaction');
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') throw errors.badRequest(`Bundle.type must be batch or transaction, not '${String(bundle.type)}'`, ['Bundle.type']);
  const raw = bundle.entry ?? [];
  if (!Array.isArray(raw)) throw errors.badRequest('Bundle.entry must be an array', ['Bundle.entry']);
  if (raw.length > maxEntries) throw errors.tooLarge(`The Bundle has ${raw.length} entries; this server accepts at most ${maxEntries}`);
  return { type: bundle.type, entries: raw.map((e, i) => planEntry(e, i, baseUrl)) };
}

function planEntry(entry: BundleEntry, index: number, baseUrl: string): PlannedEntry {
  const at = `Bundle.entry[${index}]`;
  if (!entry || typeof entry !== 'object') throw errors.badRequest(`Bundle entry ${index} is not an object`, [at]);
  const req = entry.request;
  if (!req || typeof req !== 'object') throw errors.badRequest(`Bundle entry ${index} has no request`, [`${at}.request`]);
  const method = String(req.method ?? '').toUpperCase() as EntryMethod;
  if (!(method in ORDER)) throw errors.badRequest(`Bundle entry ${index}: request.method '${String(req.method)}' is not supported`, [`${at}.request.method`]);
  const planned: PlannedEntry = {
    index,
    method,
    target: parseEntryUrl(req.url, baseUrl, index),
    fullUrl: typeof entry.fullUrl === 'string' ? entry.fullUrl : undefined,
    ifMatch: req.ifMatch,
    ifNoneExist: req.ifNoneExist,
    ifNoneMatch: req.ifNoneMatch,
    ifModifiedSince: req.ifModifiedSince,
  };
  if (method === 'POST' || method === 'PUT') {
    if (!entry.resource || typeof entry.resource !== 'object') throw errors.badRequest(`Bundle entry ${index}: ${method} needs a resource`, [`${at}.resource`]);
    planned.resource = entry.resource;
  }
  if (method === 'PATCH') planned.patch = patchOperations(entry.resource, index);
  return planned;
}

function patchOperations(resource: Resource | undefined, index: number): unknown {
  const binary = resource as { resourceType?: string; contentType?: string; data?: string } | undefined;
  if (binary?.resourceType !== 'Binary' || !/json-patch\+json/i.test(binary.contentType ?? '') || typeof binary.data !== 'string') {
    throw errors.badRequest(`Bundle entry ${index}: PATCH needs a Binary resource with contentType application/json-patch+json`, [`Bundle.entry[${index}].resource`]);
  }
  try {
    return JSON.parse(Buffer.from(binary.data, 'base64').toString('utf8'));
  } catch {
    throw errors.badRequest(`Bundle entry ${index}: the Binary data is not a base64 JSON Patch document`);
  }
}

/** The entry as a FHIR request, as if it had arrived on its own (headers from `request.*`). */
export function entryRequest(e: PlannedEntry, outer: FhirRequest, body?: unknown): FhirRequest {
  const headers: Record<string, string | undefined> = {
    'if-match': e.ifMatch,
    'if-none-exist': e.ifNoneExist,
    'if-none-match': e.ifNoneMatch,
    'if-modified-since': e.ifModifiedSince,
    prefer: outer.headers.prefer,
    'content-type': e.method === 'PATCH' ? 'application/json-patch+json' : 'application/fhir+json',
  };
  return { method: e.method, segments: e.target.segments, query: e.target.query, headers, body: body ?? e.resource ?? e.patch, baseUrl: outer.baseUrl };
}
