import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

const patient = (extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient',
  name: [{ family: 'Çelik', given: ['Ayşe'] }],
  birthDate: '1980-02-29',
  ...extra,
});

describe('create, read, vread', () => {
  it('creates with a server-assigned id, ignoring a body id, and reads it back', async () => {
    const created = await http('POST', `${srv.base}/Patient`, { body: patient({ id: 'client-chosen' }) });
    expect(created.status).toBe(201);
    expect(created.body.id).not.toBe('client-chosen');
    expect(created.body.meta.versionId).toBe('1');
    expect(created.headers.get('etag')).toBe('W/"1"');
    expect(created.headers.get('location')).toBe(`${srv.base}/Patient/${created.body.id}/_history/1`);
    expect(created.headers.get('last-modified')).toBeTruthy();
    expect(created.headers.get('content-type')).toMatch(/^application\/fhir\+json/);

    const read = await http('GET', `${srv.base}/Patient/${created.body.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
    expect(read.body.name[0].family).toBe('Çelik');

    const vread = await http('GET', `${srv.base}/Patient/${created.body.id}/_history/1`);
    expect(vread.status).toBe(200);
    expect(vread.body).toEqual(created.body);
  });

  it('answers 404 for an unknown id and an unknown resource type', async () => {
    expect((await http('GET', `${srv.base}/Patient/nope`)).status).toBe(404);
    const r = await http('GET', `${srv.base}/Patients/1`);
    expect(r.status).toBe(404);
    expect(r.body.resourceType).toBe('OperationOutcome');
  });
});

describe('update and delete', () => {
  it('versions every update and keeps the history; delete leaves a tombstone (410)', async () => {
    const c = await http('POST', `${srv.base}/Patient`, { body: patient() });
    const id = c.body.id;
    const u = await http('PUT', `${srv.base}/Patient/${id}`, { body: { ...c.body, gender: 'female' } });
    expect(u.status).toBe(200);
    expect(u.body.meta.versionId).toBe('2');
    const d = await http('DELETE', `${srv.base}/Patient/${id}`);
    expect(d.status).toBe(200);
    expect((await http('GET', `${srv.base}/Patient/${id}`)).status).toBe(410);
    const h = await http('GET', `${srv.base}/Patient/${id}/_history`);
    expect(h.status).toBe(200);
    expect(h.body.type).toBe('history');
    expect(h.body.entry.map((e: any) => e.request.method)).toEqual(['DELETE', 'PUT', 'POST']);
    expect((await http('GET', `${srv.base}/Patient/${id}/_history/1`)).body.birthDate).toBe('1980-02-29');
  });

  it('an update that changes nothing writes no new version', async () => {
    const c = await http('POST', `${srv.base}/Patient`, { body: patient() });
    const same = await http('PUT', `${srv.base}/Patient/${c.body.id}`, { body: { ...c.body, meta: { versionId: '9', lastUpdated: '2001-01-01T00:00:00Z' } } });
    expect(same.status).toBe(200);
    expect(same.body.meta.versionId).toBe('1');
    expect(same.body.meta.lastUpdated).toBe(c.body.meta.lastUpdated);
    const changed = await http('PUT', `${srv.base}/Patient/${c.body.id}`, { body: { ...c.body, gender: 'unknown' } });
    expect(changed.body.meta.versionId).toBe('2');
    expect((await http('GET', `${srv.base}/Patient/${c.body.id}/_history`)).body.total).toBe(2);
  });

  it('update-as-create with a client id, and rejects an id mismatch', async () => {
    const u = await http('PUT', `${srv.base}/Patient/mine-1`, { body: patient({ id: 'mine-1' }) });
    expect(u.status).toBe(201);
    const bad = await http('PUT', `${srv.base}/Patient/mine-2`, { body: patient({ id: 'mine-3' }) });
    expect(bad.status).toBe(400);
  });

  it('If-Match: a stale version is a 412 and writes nothing', async () => {
    const c = await http('POST', `${srv.base}/Patient`, { body: patient() });
    const ok = await http('PUT', `${srv.base}/Patient/${c.body.id}`, { body: { ...c.body, gender: 'male' }, headers: { 'if-match': 'W/"1"' } });
    expect(ok.status).toBe(200);
    const stale = await http('PUT', `${srv.base}/Patient/${c.body.id}`, { body: { ...c.body, gender: 'other' }, headers: { 'if-match': 'W/"1"' } });
    expect(stale.status).toBe(412);
    const r = await http('GET', `${srv.base}/Patient/${c.body.id}`);
    expect(r.body.gender).toBe('male');
    expect(r.body.meta.versionId).toBe('2');
  });

  it('exactly one of N concurrent writers with the same If-Match wins', async () => {
    const c = await http('POST', `${srv.base}/Patient`, { body: patient() });
    const N = 10;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        http('PUT', `${srv.base}/Patient/${c.body.id}`, { body: { ...c.body, name: [{ family: `W${i}` }] }, headers: { 'if-match': 'W/"1"' } }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 412)).toHaveLength(N - 1);
    const h = await http('GET', `${srv.base}/Patient/${c.body.id}/_history`);
    expect(h.body.total).toBe(2);
  });

  it('concurrent writers without If-Match all succeed with distinct versions (none lost)', async () => {
    const c = await http('POST', `${srv.base}/Patient`, { body: patient() });
    const N = 8;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => http('PUT', `${srv.base}/Patient/${c.body.id}`, { body: { ...c.body, name: [{ family: `W${i}` }] } })),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    const versions = results.map((r) => Number(r.body.meta.versionId)).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: N }, (_, i) => i + 2));
    const h = await http('GET', `${srv.base}/Patient/${c.body.id}/_history?_count=50`);
    expect(h.body.total).toBe(N + 1);
  });
});

describe('profiles', () => {
  it('refuses a write that breaks a claimed product profile, pointing at the element', async () => {
    const meta = { profile: ['https://medivoy.org/fhir/StructureDefinition/medivoy-patient'] };
    const bad = await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', meta, name: [{ family: 'X' }] } });
    expect(bad.status).toBe(400);
    expect(bad.body.issue.flatMap((i: any) => i.expression)).toEqual(['Patient.birthDate']);
    const good = await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', meta, name: [{ family: 'X' }], birthDate: '2001-02-03' } });
    expect(good.status).toBe(201);
  });
});

describe('patch', () => {
  it('applies a JSON Patch and validates the result', async () => {
    const c = await http('POST', `${srv.base}/Patient`, { body: patient() });
    const p = await http('PATCH', `${srv.base}/Patient/${c.body.id}`, {
      raw: JSON.stringify([{ op: 'add', path: '/gender', value: 'female' }]),
      headers: { 'content-type': 'application/json-patch+json' },
    });
    expect(p.status).toBe(200);
    expect(p.body.gender).toBe('female');
    expect(p.body.meta.versionId).toBe('2');
    const bad = await http('PATCH', `${srv.base}/Patient/${c.body.id}`, {
      raw: JSON.stringify([{ op: 'add', path: '/gender', value: 42 }]),
      headers: { 'content-type': 'application/json-patch+json' },
    });
    expect(bad.status).toBe(400);
    expect((await http('GET', `${srv.base}/Patient/${c.body.id}`)).body.meta.versionId).toBe('2');
  });
});

describe('conditional interactions', () => {
  it('If-None-Exist creates once, then returns the match', async () => {
    const body = patient({ identifier: [{ system: 'urn:mrn', value: 'MRN-1' }] });
    const a = await http('POST', `${srv.base}/Patient`, { body, headers: { 'if-none-exist': 'identifier=urn:mrn|MRN-1' } });
    const b = await http('POST', `${srv.base}/Patient`, { body, headers: { 'if-none-exist': 'identifier=urn:mrn|MRN-1' } });
    expect(a.status).toBe(201);
    expect(b.status).toBe(200);
    expect(b.body.id).toBe(a.body.id);
  });

  it('parallel identical conditional creates leave exactly one resource', async () => {
    const body = patient({ identifier: [{ system: 'urn:mrn', value: 'MRN-PAR' }] });
    const results = await Promise.all(
      Array.from({ length: 16 }, () => http('POST', `${srv.base}/Patient`, { body, headers: { 'if-none-exist': 'identifier=urn:mrn|MRN-PAR' } })),
    );
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    const s = await http('GET', `${srv.base}/Patient?identifier=urn:mrn|MRN-PAR`);
    expect(s.body.entry).toHaveLength(1);
  });
});
