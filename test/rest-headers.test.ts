import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type HttpResult, type TestServer } from './support/server.js';
import { expectOutcome } from './support/outcomes.js';
import { jsonPatch, patient } from './support/factories.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

/** The version headers R4 3.1.0.4/3.1.0.5 require of a write response, checked against the stored version. */
function expectVersionHeaders(res: HttpResult, type: string, id: string, version: number, lastUpdated: string, withLocation = true): void {
  expect(res.headers.get('etag')).toBe(`W/"${version}"`);
  expect(res.headers.get('last-modified')).toBe(new Date(lastUpdated).toUTCString());
  if (withLocation) expect(res.headers.get('location')).toBe(`${srv.base}/${type}/${id}/_history/${version}`);
}

async function current(id: string): Promise<any> {
  const res = await http('GET', `${srv.base}/Patient/${id}`);
  expect(res.status).toBe(200);
  return res.body;
}

describe('version headers', () => {
  it('create, update, update-as-create and patch return ETag, Last-Modified and a versioned Location', async () => {
    const c = await http('POST', `${srv.base}/Patient`, { body: patient() });
    expect(c.status).toBe(201);
    const id = c.body.id;
    expectVersionHeaders(c, 'Patient', id, 1, c.body.meta.lastUpdated);

    const u = await http('PUT', `${srv.base}/Patient/${id}`, { body: { ...c.body, active: true } });
    expect(u.status).toBe(200);
    expectVersionHeaders(u, 'Patient', id, 2, u.body.meta.lastUpdated);

    const p = await http('PATCH', `${srv.base}/Patient/${id}`, jsonPatch([{ op: 'replace', path: '/active', value: false }]));
    expect(p.status).toBe(200);
    expectVersionHeaders(p, 'Patient', id, 3, p.body.meta.lastUpdated);

    const uc = await http('PUT', `${srv.base}/Patient/hdr-client-id`, { body: patient({ id: 'hdr-client-id' }) });
    expect(uc.status).toBe(201);
    expectVersionHeaders(uc, 'Patient', 'hdr-client-id', 1, uc.body.meta.lastUpdated);

    const r = await http('GET', `${srv.base}/Patient/${id}`);
    expectVersionHeaders(r, 'Patient', id, 3, r.body.meta.lastUpdated, false);
    const vr = await http('GET', `${srv.base}/Patient/${id}/_history/2`);
    expectVersionHeaders(vr, 'Patient', id, 2, u.body.meta.lastUpdated, false);
  });
});

describe('conditional reads', () => {
  let id: string;
  let lastModified: string;
  beforeAll(async () => {
    const c = await http('POST', `${srv.base}/Patient`, { body: patient() });
    id = c.body.id;
    lastModified = c.headers.get('last-modified')!;
  });

  const notModified = (res: HttpResult, version: number) => {
    expect(res.status).toBe(304);
    expect(res.text).toBe('');
    expect(res.headers.get('etag')).toBe(`W/"${version}"`);
  };

  it('If-None-Match with the current ETag, a strong form, a list, or * is a 304 with no body on read and vread', async () => {
    for (const inm of ['W/"1"', '"1"', 'W/"7", W/"1"', '*']) {
      notModified(await http('GET', `${srv.base}/Patient/${id}`, { headers: { 'if-none-match': inm } }), 1);
      notModified(await http('GET', `${srv.base}/Patient/${id}/_history/1`, { headers: { 'if-none-match': inm } }), 1);
    }
  });

  it('If-None-Match with another version is answered in full', async () => {
    const res = await http('GET', `${srv.base}/Patient/${id}`, { headers: { 'if-none-match': 'W/"2"' } });
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(id);
  });

  it('If-Modified-Since at or after Last-Modified is a 304; before it, a 200', async () => {
    notModified(await http('GET', `${srv.base}/Patient/${id}`, { headers: { 'if-modified-since': lastModified } }), 1);
    notModified(await http('GET', `${srv.base}/Patient/${id}/_history/1`, { headers: { 'if-modified-since': lastModified } }), 1);
    const later = new Date(Date.parse(lastModified) + 3600_000).toUTCString();
    notModified(await http('GET', `${srv.base}/Patient/${id}`, { headers: { 'if-modified-since': later } }), 1);
    const earlier = new Date(Date.parse(lastModified) - 3600_000).toUTCString();
    const res = await http('GET', `${srv.base}/Patient/${id}`, { headers: { 'if-modified-since': earlier } });
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(id);
  });

  it('after an update the old ETag no longer matches', async () => {
    const body = await current(id);
    expect((await http('PUT', `${srv.base}/Patient/${id}`, { body: { ...body, gender: 'unknown' } })).status).toBe(200);
    const res = await http('GET', `${srv.base}/Patient/${id}`, { headers: { 'if-none-match': 'W/"1"' } });
    expect(res.status).toBe(200);
    expect(res.body.meta.versionId).toBe('2');
    // The old version itself has not changed: vread of version 1 still honours its ETag.
    notModified(await http('GET', `${srv.base}/Patient/${id}/_history/1`, { headers: { 'if-none-match': 'W/"1"' } }), 1);
  });
});

describe('Prefer: return', () => {
  const writes: [string, (id: string, body: any, prefer: string) => Promise<HttpResult>, number][] = [
    ['create', (_id, _body, prefer) => http('POST', `${srv.base}/Patient`, { body: patient(), headers: { prefer } }), 201],
    ['update', (id, body, prefer) => http('PUT', `${srv.base}/Patient/${id}`, { body: { ...body, active: true }, headers: { prefer } }), 200],
    ['patch', (id, _body, prefer) => http('PATCH', `${srv.base}/Patient/${id}`, jsonPatch([{ op: 'add', path: '/active', value: true }], { prefer })), 200],
  ];

  it.each(writes)('%s with return=minimal has no body but every header', async (_what, send, status) => {
    const c = (await http('POST', `${srv.base}/Patient`, { body: patient() })).body;
    const res = await send(c.id, c, 'return=minimal');
    expect(res.status).toBe(status);
    expect(res.text).toBe('');
    const id = res.headers.get('location')!.split('/').at(-3)!;
    const stored = await current(id);
    expectVersionHeaders(res, 'Patient', id, Number(stored.meta.versionId), stored.meta.lastUpdated);
  });

  it.each(writes)('%s with return=representation returns the stored resource', async (_what, send, status) => {
    const c = (await http('POST', `${srv.base}/Patient`, { body: patient() })).body;
    const res = await send(c.id, c, 'return=representation');
    expect(res.status).toBe(status);
    expect(res.body).toEqual(await current(res.body.id));
    expectVersionHeaders(res, 'Patient', res.body.id, Number(res.body.meta.versionId), res.body.meta.lastUpdated);
  });

  it.each(writes)('%s with return=OperationOutcome returns an OperationOutcome and the headers', async (_what, send, status) => {
    const c = (await http('POST', `${srv.base}/Patient`, { body: patient() })).body;
    const res = await send(c.id, c, 'return=OperationOutcome');
    expect(res.status).toBe(status);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue.every((i: { severity: string }) => i.severity === 'information' || i.severity === 'warning')).toBe(true);
    const id = res.headers.get('location')!.split('/').at(-3)!;
    const stored = await current(id);
    expectVersionHeaders(res, 'Patient', id, Number(stored.meta.versionId), stored.meta.lastUpdated);
  });

  it('Prefer with other tokens around return= is understood', async () => {
    const res = await http('POST', `${srv.base}/Patient`, { body: patient(), headers: { prefer: 'handling=strict, return=minimal' } });
    expect(res.status).toBe(201);
    expect(res.text).toBe('');
  });
});

describe('content negotiation', () => {
  it.each(['application/fhir+json', 'application/json', 'application/fhir+json; charset=utf-8', 'application/json;charset=UTF-8', 'application/fhir+json; fhirVersion=4.0'])(
    'a body sent as %s is accepted',
    async (type) => {
      const c = await http('POST', `${srv.base}/Patient`, { body: patient(), headers: { 'content-type': type } });
      expect(c.status).toBe(201);
      const u = await http('PUT', `${srv.base}/Patient/${c.body.id}`, { body: { ...c.body, active: true }, headers: { 'content-type': type } });
      expect(u.status).toBe(200);
    },
  );

  it.each([
    ['application/fhir+json', /^application\/fhir\+json/],
    ['application/json', /^application\/(fhir\+)?json/],
    ['*/*', /^application\/fhir\+json/],
    ['application/xml;q=0.1, application/json;q=0.9', /^application\/(fhir\+)?json/],
    ['application/fhir+xml;q=0.5, application/fhir+json;q=0.8, text/html;q=0.1', /^application\/fhir\+json/],
    ['text/html, application/xhtml+xml, */*;q=0.8', /^application\/(fhir\+)?json/],
  ])('Accept: %s is answered in JSON', async (accept, type) => {
    const res = await http('GET', `${srv.base}/metadata`, { headers: { accept } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(type);
    expect(res.body.resourceType).toBe('CapabilityStatement');
  });

  it.each(['json', 'application/fhir%2Bjson', 'application/json'])('_format=%s is answered in JSON', async (format) => {
    const c = (await http('POST', `${srv.base}/Patient`, { body: patient() })).body;
    const res = await http('GET', `${srv.base}/Patient/${c.id}?_format=${format}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/(fhir\+)?json/);
    expect(res.body).toEqual(c);
  });

  it('_pretty=true indents the JSON and parses to the same resource', async () => {
    const c = (await http('POST', `${srv.base}/Patient`, { body: patient({ name: [{ family: 'Pretty', given: ['Ann', 'Bo'] }] }) })).body;
    const plain = await http('GET', `${srv.base}/Patient/${c.id}`);
    const pretty = await http('GET', `${srv.base}/Patient/${c.id}?_pretty=true`);
    expect(plain.text).not.toContain('\n');
    expect(pretty.text).toMatch(/^\{\n {2}"resourceType": "Patient",\n/);
    expect(pretty.body).toEqual(plain.body);
    const prettyBundle = await http('GET', `${srv.base}/Patient/${c.id}/_history?_pretty=true`);
    expect(prettyBundle.text).toContain('\n  "type": "history"');
  });

  it('[base] and [base]/ are the same endpoint', async () => {
    const bare = await http('GET', `${srv.url}/fhir`);
    const slash = await http('GET', `${srv.url}/fhir/`);
    // GET [base] is system-level search.
    expect(slash.status).toBe(200);
    expect(bare.status).toBe(200);
    expect(slash.body.type).toBe('searchset');
    expect(bare.body.type).toBe('searchset');
    const batch = { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'metadata' } }] };
    const postBare = await http('POST', `${srv.url}/fhir`, { body: batch });
    const postSlash = await http('POST', `${srv.url}/fhir/`, { body: batch });
    expect(postSlash.status).toBe(postBare.status);
    expect(postSlash.body?.type).toBe(postBare.body?.type);
  });
});

describe('CORS and security headers', () => {
  it('answers a preflight with 204 and the allow headers', async () => {
    const res = await http('OPTIONS', `${srv.base}/Patient`, {
      headers: { origin: 'https://app.example.org', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'if-match, content-type, prefer' },
    });
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect(res.headers.get('access-control-allow-origin')).toMatch(/^(\*|https:\/\/app\.example\.org)$/);
    expect(res.headers.get('access-control-allow-methods')).toMatch(/\bPUT\b/);
    const allowHeaders = res.headers.get('access-control-allow-headers')!.toLowerCase();
    for (const h of ['if-match', 'content-type', 'prefer']) expect(allowHeaders).toContain(h);
  });

  it('exposes ETag, Location, Content-Location and Last-Modified to browser code', async () => {
    const res = await http('POST', `${srv.base}/Patient`, { body: patient(), headers: { origin: 'https://app.example.org' } });
    expect(res.status).toBe(201);
    expect(res.headers.get('access-control-allow-origin')).toMatch(/^(\*|https:\/\/app\.example\.org)$/);
    const exposed = res.headers.get('access-control-expose-headers')!.toLowerCase().split(/\s*,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(['etag', 'location', 'content-location', 'last-modified']));
  });

  it('sends nosniff and no-store on successful and failed responses', async () => {
    const c = await http('POST', `${srv.base}/Patient`, { body: patient() });
    for (const res of [
      c,
      await http('GET', `${srv.base}/Patient/${c.body.id}`),
      await http('GET', `${srv.base}/Patient/${c.body.id}/_history`),
      await http('GET', `${srv.base}/metadata`),
      await http('GET', `${srv.base}/Patient/no-such-patient`),
      await http('POST', `${srv.base}/Patient`, { body: patient({ gender: 'sometimes' }) }),
    ]) {
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('cache-control')).toMatch(/\bno-store\b/);
    }
  });
});

describe('CORS with a configured origin list', () => {
  let restricted: TestServer;
  beforeAll(async () => {
    restricted = await startTestServer({ CORS_ORIGINS: 'https://app.example.org' });
  });
  afterAll(async () => {
    await restricted?.close();
  });

  it('allows the listed origin by name and varies on Origin', async () => {
    const res = await http('GET', `${restricted.base}/metadata`, { headers: { origin: 'https://app.example.org' } });
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.org');
    expect(res.headers.get('vary')).toMatch(/\bOrigin\b/i);
    const pre = await http('OPTIONS', `${restricted.base}/Patient`, { headers: { origin: 'https://app.example.org', 'access-control-request-method': 'PUT' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example.org');
    expect(pre.headers.get('access-control-allow-methods')).toMatch(/\bPUT\b/);
  });

  it('gives another origin no allow-origin header, on requests and preflights', async () => {
    const res = await http('GET', `${restricted.base}/metadata`, { headers: { origin: 'https://evil.example.com' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const pre = await http('OPTIONS', `${restricted.base}/Patient`, { headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'PUT' } });
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    expect(pre.headers.get('access-control-allow-methods')).toBeNull();
  });
});
