/**
 * Properties of hostile input against a running server (test/fuzz-hostile-input.test.ts runs them briefly in CI,
 * `npm run fuzz -- --runs 20000` for longer): whatever request bodies, query strings, headers and Bundle shapes
 * arrive, no response is a 5xx, the server keeps running, and every 4xx is a FHIR OperationOutcome.
 */
import fc from 'fast-check';

export interface FuzzRequest {
  method: string;
  /** Path and query below the server's FHIR base, e.g. `/Patient?name=x` ("" is the base itself). */
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface FuzzAnswer {
  status: number;
  contentType: string;
  text: string;
}

/** Sends one request (with the caller's token) and returns what came back. */
export type Send = (r: FuzzRequest) => Promise<FuzzAnswer>;

/** Why an answer breaks the properties, or undefined when it keeps them. */
export function violation(r: FuzzRequest, a: FuzzAnswer): string | undefined {
  if (a.status === 0) return 'no answer (connection failed: the server crashed or hung)';
  if (a.status >= 500) return `status ${a.status}: ${a.text.slice(0, 300)}`;
  if (a.status >= 400 && r.method !== 'HEAD') {
    if (!/^application\/fhir\+json/.test(a.contentType)) return `status ${a.status} with content-type ${a.contentType}: ${a.text.slice(0, 200)}`;
    let body: { resourceType?: string; issue?: unknown[] } | undefined;
    try {
      body = JSON.parse(a.text) as typeof body;
    } catch {
      return `status ${a.status} with a body that is not JSON: ${a.text.slice(0, 200)}`;
    }
    if (body?.resourceType !== 'OperationOutcome' || !Array.isArray(body.issue) || !body.issue.length) return `status ${a.status} without an OperationOutcome: ${a.text.slice(0, 200)}`;
  }
  return undefined;
}

const TYPES = ['Patient', 'Observation', 'Appointment', 'Slot', 'Encounter', 'Condition', 'Practitioner', 'Bundle', 'Parameters', 'Binary', 'OperationOutcome', 'NotAType', 'patient', ''];
const ASCII = fc.string({ maxLength: 40 });
const UNICODE = fc.string({ unit: 'grapheme', maxLength: 40 });
const NASTY = fc.constantFrom(
  '', ' ', '%', '%zz', '%00', '\u0000', '..', '../..', '*', '|', 'a|b|c', 'http://x|y', '$gt', '{"$ne":null}', '{"$where":"sleep(1000)"}', '.*', '(a+)+$', '^(a|a)*$',
  'ge2020', 'ap2020-13-45', 'lt', 'eq-1', '9999999999999999999999', '-1', '0', '1e309', 'NaN', 'Infinity', 'true', 'null', '[]', '{}',
  'Patient:link', 'Patient:*', '*:*', 'Observation:subject:Patient', 'Patient/1', 'Patient/../Observation', 'urn:uuid:x', '\ud800', 'a'.repeat(3000),
);
const SAFE_HEADER = fc.string({ maxLength: 60 }).filter((s) => /^[\x20-\x7e]*$/.test(s));

const json = fc.jsonValue({ maxDepth: 4 });
const keyName = fc.oneof(
  fc.constantFrom('id', 'meta', 'text', 'name', 'identifier', 'birthDate', 'gender', 'subject', 'status', 'code', 'value', 'valueQuantity', 'effectiveDateTime', 'link', 'contained', 'extension', 'entry', 'type', 'resource', 'request', 'slot', 'participant', 'start', 'end', '$where', '$gt', '__proto__', 'constructor', 'prototype', '_birthDate', 'resourceType'),
  ASCII,
);
/** Objects shaped somewhat like resources (a resourceType, known and unknown elements of any JSON type). */
export const resourceLike = fc
  .tuple(fc.constantFrom(...TYPES), fc.dictionary(keyName, fc.oneof(json, NASTY, fc.record({ $gt: fc.constant('') }), fc.record({ $where: ASCII })), { maxKeys: 6 }))
  .map(([resourceType, rest]) => ({ resourceType, ...rest }));

const ids = fc.oneof(fc.constantFrom('p1', 'x', 'a'.repeat(64), 'a'.repeat(65), '$everything', '_history', '_search', '-', '.', 'ünï'), ASCII, NASTY);
const enc = (s: string) => {
  try {
    return encodeURIComponent(s);
  } catch {
    return '%ED%A0%80'; // a lone surrogate, as bytes
  }
};

/** Write requests with bodies of any JSON (or not JSON at all). */
export const bodyRequests: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    fc.constantFrom('POST', 'PUT', 'PATCH'),
    fc.constantFrom(...TYPES),
    ids,
    fc.oneof(resourceLike.map((r) => JSON.stringify(r)), json.map((j) => JSON.stringify(j)), ASCII, UNICODE, NASTY),
    fc.constantFrom('application/fhir+json', 'application/json', 'application/json-patch+json', 'text/plain', 'application/x-www-form-urlencoded', 'application/xml'),
  )
  .map(([method, type, id, body, contentType]) => ({
    method,
    path: method === 'POST' ? `/${enc(type)}` : `/${enc(type)}/${enc(id)}`,
    headers: { 'content-type': contentType },
    body,
  }));

const paramName = fc.oneof(
  fc.constantFrom(
    'name', 'name:contains', 'name:exact', 'name:missing', 'family', '_id', 'identifier', 'identifier:of-type', 'birthdate', 'gender:not', 'gender:text', '_count', '_offset', '_sort', '_total',
    '_include', '_revinclude', '_include:iterate', '_revinclude:iterate', '_has:Observation:subject:code', '_has:Observation:patient:_has:x', 'subject', 'subject:Patient', 'subject:Patient.name',
    'subject.name', 'general-practitioner.name', 'date', '_lastUpdated', '_elements', '_summary', '_format', '_pretty', 'code', 'code:text', 'code:in', 'code:below', 'value-quantity', '_filter', '_query',
    '_type', '_since', '_at', '_content', '_text', '_list', 'name[$gt]', '_id[$ne]', '$where', '__proto__', 'constructor',
  ),
  ASCII,
);
/** Search and read requests with any query string (names, modifiers and values, encoded or raw). */
export const queryRequests: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    fc.constantFrom('', '/Patient', '/Observation', '/Appointment', '/Patient/_search', '/Patient/p1', '/Patient/p1/_history', '/_history', '/Patient/$everything', '/Appointment/$find', '/metadata', '/NotAType'),
    fc.array(fc.tuple(paramName, fc.oneof(ASCII, UNICODE, NASTY)), { maxLength: 8 }),
    fc.option(fc.string({ maxLength: 60 }), { nil: undefined }),
  )
  .map(([path, pairs, raw]): FuzzRequest => ({
    method: path.endsWith('/_search') ? 'POST' : 'GET',
    path: `${path}?${raw ?? pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&')}`,
    headers: path.endsWith('/_search') ? { 'content-type': 'application/x-www-form-urlencoded' } : ({} as Record<string, string>),
    body: path.endsWith('/_search') ? '' : undefined,
  }));

/** Any method on any path with hostile header values. */
export const headerRequests: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'),
    fc.constantFrom('/Patient', '/Patient/p1', '/Patient/p1/_history/1', '', '/metadata', '/Patient?name=x', '/Observation/$lastn'),
    fc.record(
      {
        accept: fc.oneof(fc.constantFrom('application/fhir+json', 'application/fhir+xml', 'text/html', '*/*', 'application/json;q=0', 'application/fhir+json; fhirVersion=3.0', ''), SAFE_HEADER),
        'content-type': fc.oneof(fc.constantFrom('application/fhir+json', 'application/fhir+json; charset=latin1', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16'), SAFE_HEADER),
        'if-match': fc.oneof(fc.constantFrom('W/"1"', '"1"', 'W/""', 'W/"-1"', 'W/"99999999999999999999"', '*'), SAFE_HEADER),
        'if-none-match': fc.oneof(fc.constantFrom('W/"1"', '*'), SAFE_HEADER),
        'if-none-exist': fc.oneof(fc.constantFrom('identifier=a|b', '_id=p1', 'name:contains=', '$where=1', 'x'), SAFE_HEADER),
        'if-modified-since': fc.oneof(fc.constantFrom('Tue, 01 Jan 2030 00:00:00 GMT', 'yesterday', '0'), SAFE_HEADER),
        prefer: fc.oneof(fc.constantFrom('return=minimal', 'return=representation', 'return=OperationOutcome', 'handling=strict', 'respond-async'), SAFE_HEADER),
        'x-request-id': SAFE_HEADER,
        'idempotency-key': SAFE_HEADER,
        'x-forwarded-for': fc.oneof(fc.constantFrom('10.0.0.1', '::1', 'not-an-ip', '1.1.1.1, 2.2.2.2'), SAFE_HEADER),
        range: SAFE_HEADER,
      },
      { requiredKeys: [] },
    ),
    fc.option(fc.oneof(resourceLike.map((r) => JSON.stringify(r)), ASCII), { nil: undefined }),
  )
  .map(([method, path, headers, body]) => ({ method, path, headers, body: method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? undefined : body }));

const entry = fc.record(
  {
    fullUrl: fc.oneof(fc.uuid().map((u) => `urn:uuid:${u}`), fc.constantFrom('urn:uuid:dup', 'Patient/p1', 'http://x/Patient/1', ''), ASCII),
    request: fc.record(
      {
        method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'X'),
        url: fc.oneof(fc.constantFrom('Patient', 'Patient/p1', 'Patient?name=x', 'Observation/o1/_history/1', 'Patient/$everything', '', '/Patient', 'metadata', 'Patient/p1/$meta', '_history'), ASCII),
        ifMatch: fc.constantFrom('W/"1"', 'x'),
        ifNoneExist: fc.constantFrom('identifier=a|b', '_id=', '$gt=1'),
      },
      { requiredKeys: ['method', 'url'] },
    ),
    resource: fc.oneof(resourceLike, json),
  },
  { requiredKeys: [] },
);
/** Batch and transaction Bundles (and other Bundle types posted to the base) of any shape. */
export const bundleRequests: fc.Arbitrary<FuzzRequest> = fc
  .tuple(fc.constantFrom('transaction', 'batch', 'collection', 'searchset', 'history', 'document', 'message', 'nonsense'), fc.oneof(fc.array(entry, { maxLength: 6 }), json), fc.boolean())
  .map(([type, entries, toType]) => ({
    method: 'POST',
    path: toType ? '/Bundle' : '',
    headers: { 'content-type': 'application/fhir+json' },
    body: JSON.stringify({ resourceType: 'Bundle', type, entry: entries }),
  }));

/** Runs every property for `runs` cases in total (split by kind), seeded; throws with the counterexample on the first violation. */
export async function checkHostileInput(send: Send, opts: { runs: number; seed: number; onCase?: () => void }): Promise<void> {
  const share = [
    ['bodies', bodyRequests, 0.3],
    ['query strings', queryRequests, 0.3],
    ['headers', headerRequests, 0.2],
    ['Bundle shapes', bundleRequests, 0.2],
  ] as const;
  for (const [i, [name, arb, part]] of share.entries()) {
    await fc.assert(
      fc.asyncProperty(arb, async (r) => {
        opts.onCase?.();
        const why = violation(r, await send(r));
        if (why) throw new Error(`${name}: ${r.method} ${r.path} ${JSON.stringify(r.headers)} ${r.body?.slice(0, 500) ?? ''}\n→ ${why}`);
      }),
      { numRuns: Math.max(1, Math.round(opts.runs * part)), seed: opts.seed + i, endOnFailure: true },
    );
  }
}

/** A `Send` over fetch against a FHIR base with a bearer token source. */
export function fetchSender(base: string, token: () => Promise<string>, timeoutMs = 30_000): Send {
  return async (r) => {
    try {
      const res = await fetch(`${base}${r.path}`, {
        method: r.method,
        headers: { authorization: `Bearer ${await token()}`, ...r.headers },
        body: r.body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() };
    } catch (err) {
      // fetch refuses some requests before sending them (a header value it cannot encode): not the server's doing.
      if (err instanceof TypeError && !(err as { cause?: unknown }).cause) return { status: 200, contentType: '', text: '' };
      return { status: 0, contentType: '', text: String(err) };
    }
  };
}
