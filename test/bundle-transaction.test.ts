import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
beforeAll(async () => {
  // No background writes (the rating SearchParameter's re-index Task) while the tests compare whole databases.
  srv = await startTestServer({ RATING_SEARCH_PARAMETER: 'false' });
});
afterAll(async () => {
  await srv?.close();
});

/** POSTs a Bundle of the given type to the base. */
const postBundle = (type: 'batch' | 'transaction', entry: unknown[]) => http('POST', srv.base, { body: { resourceType: 'Bundle', type, entry } });

const patient = (family: string, extra: Record<string, unknown> = {}) => ({ resourceType: 'Patient', name: [{ family }], ...extra });
const obs = (subject: string) => ({ resourceType: 'Observation', status: 'final', code: { text: 'weight' }, subject: { reference: subject } });

/**
 * Everything stored, current and history, so a failed transaction can be shown to leave no trace. The audit
 * trail is left out: the failed attempt is rightly recorded there (test/audit-trail.test.ts).
 */
async function snapshot() {
  const db = srv.running.mongo.db;
  const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).filter((n) => n.startsWith('fhir_') && n !== 'fhir_AuditEvent').sort();
  const contents: Record<string, unknown[]> = {};
  for (const name of names) contents[name] = await db.collection(name).find({}, { projection: { ix: 0 } }).sort({ _id: 1 }).toArray();
  return contents;
}

describe('transaction bundles', () => {
  it('creates entries, resolving urn:uuid references at any depth to the assigned ids', async () => {
    const res = await postBundle('transaction', [
      { fullUrl: 'urn:uuid:11111111-1111-4111-8111-111111111111', resource: obs('urn:uuid:22222222-2222-4222-8222-222222222222'), request: { method: 'POST', url: 'Observation' } },
      {
        fullUrl: 'urn:uuid:22222222-2222-4222-8222-222222222222',
        resource: patient('Tx', { extension: [{ url: 'http://example.org/x', valueReference: { reference: 'urn:uuid:11111111-1111-4111-8111-111111111111' } }] }),
        request: { method: 'POST', url: 'Patient' },
      },
    ]);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('transaction-response');
    expect(res.body.entry.map((e: any) => e.response.status)).toEqual(['201 Created', '201 Created']);
    const obsId = res.body.entry[0].resource.id;
    const patId = res.body.entry[1].resource.id;
    expect(res.body.entry[0].resource.subject.reference).toBe(`Patient/${patId}`);
    const p = await http('GET', `${srv.base}/Patient/${patId}`);
    expect(p.body.extension[0].valueReference.reference).toBe(`Observation/${obsId}`);
  });

  it.each([
    ['an invalid resource', { resource: { resourceType: 'Patient', gender: 42 }, request: { method: 'POST', url: 'Patient' } }, 400],
    ['a stale If-Match', { resource: patient('Stale', { id: 'tx-fixed' }), request: { method: 'PUT', url: 'Patient/tx-fixed', ifMatch: 'W/"7"' } }, 412],
    ['a conditional reference matching nothing', { resource: obs('Patient?identifier=urn:none|0'), request: { method: 'POST', url: 'Observation' } }, 400],
  ])('fails as a whole on %s and leaves the database exactly as it was', async (_name, badEntry, status) => {
    await http('PUT', `${srv.base}/Patient/tx-fixed`, { body: patient('Fixed', { id: 'tx-fixed' }) });
    const before = await snapshot();
    const res = await postBundle('transaction', [
      { fullUrl: 'urn:uuid:33333333-3333-4333-8333-333333333333', resource: patient('Rollback'), request: { method: 'POST', url: 'Patient' } },
      { resource: patient('Fixed2', { id: 'tx-fixed' }), request: { method: 'PUT', url: 'Patient/tx-other' } },
      badEntry,
    ].filter((_, i) => i !== 1));
    expect(res.status).toBe(status);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(await snapshot()).toEqual(before);
  });

  it('fails as a whole when a conditional create matches twice, leaving the database as it was', async () => {
    const twin = patient('Twin', { identifier: [{ system: 'urn:mrn', value: 'TWIN' }] });
    await http('POST', `${srv.base}/Patient`, { body: twin });
    await http('POST', `${srv.base}/Patient`, { body: twin });
    const before = await snapshot();
    const res = await postBundle('transaction', [
      { resource: patient('First'), request: { method: 'POST', url: 'Patient' } },
      { fullUrl: 'urn:uuid:55555555-5555-4555-8555-555555555555', resource: twin, request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:mrn|TWIN' } },
    ]);
    expect(res.status).toBe(412);
    expect(await snapshot()).toEqual(before);
  });

  it('accepts a 5,000-entry transaction (a large patient record) and stores every entry', async () => {
    const pat = 'urn:uuid:66666666-6666-4666-8666-666666666666';
    const entry = [
      { fullUrl: pat, resource: patient('Big'), request: { method: 'POST', url: 'Patient' } },
      ...Array.from({ length: 4999 }, (_, i) => ({ resource: { ...obs(pat), valueInteger: i }, request: { method: 'POST', url: 'Observation' } })),
    ];
    const res = await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'transaction', entry }, headers: { prefer: 'return=minimal' } });
    expect(res.status).toBe(200);
    expect(res.body.entry).toHaveLength(5000);
    expect(res.body.entry.every((e: any) => e.response.status === '201 Created')).toBe(true);
    const patId = res.body.entry[0].response.location.split('/')[5];
    const stored = await srv.running.mongo.db.collection('fhir_Observation').countDocuments({ tk: `subject\u0001Patient/${patId}` });
    expect(stored).toBe(4999);
  }, 120_000);

  it('rolls back writes already applied when a later entry fails while applying', async () => {
    const existing = await http('POST', `${srv.base}/Patient`, { body: patient('Existing') });
    const before = await snapshot();
    // The DELETE and the POST are applied first (R4 order); the PATCH then fails its test operation.
    const patch = Buffer.from(JSON.stringify([{ op: 'test', path: '/gender', value: 'male' }])).toString('base64');
    const res = await postBundle('transaction', [
      { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: patch }, request: { method: 'PATCH', url: `Patient/${existing.body.id}` } },
      { resource: patient('New'), request: { method: 'POST', url: 'Patient' } },
      { request: { method: 'DELETE', url: 'Patient/tx-fixed' } },
    ]);
    expect(res.status).toBe(422);
    expect(await snapshot()).toEqual(before);
  });

  it('rewrites urn:uuid references inside JSON Patch values too', async () => {
    const target = await http('POST', `${srv.base}/Observation`, { body: obs('Patient/none') });
    const pat = 'urn:uuid:77777777-7777-4777-8777-777777777777';
    const ops = [{ op: 'replace', path: '/subject/reference', value: pat }, { op: 'add', path: '/performer', value: [{ reference: pat }] }];
    const res = await postBundle('transaction', [
      { fullUrl: pat, resource: patient('Patched'), request: { method: 'POST', url: 'Patient' } },
      { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify(ops)).toString('base64') }, request: { method: 'PATCH', url: `Observation/${target.body.id}` } },
    ]);
    expect(res.status).toBe(200);
    const ref = `Patient/${res.body.entry[0].resource.id}`;
    const after = await http('GET', `${srv.base}/Observation/${target.body.id}`);
    expect(after.body.subject.reference).toBe(ref);
    expect(after.body.performer[0].reference).toBe(ref);
  });

  it('resolves conditional references and applies a Binary-wrapped JSON Patch', async () => {
    await http('POST', `${srv.base}/Patient`, { body: patient('Cond', { identifier: [{ system: 'urn:mrn', value: 'C-1' }] }) });
    const target = await http('POST', `${srv.base}/Patient`, { body: patient('Patchme') });
    const patch = Buffer.from(JSON.stringify([{ op: 'add', path: '/gender', value: 'female' }])).toString('base64');
    const res = await postBundle('transaction', [
      { resource: obs('Patient?identifier=urn:mrn|C-1'), request: { method: 'POST', url: 'Observation' } },
      { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: patch }, request: { method: 'PATCH', url: `Patient/${target.body.id}` } },
      { request: { method: 'GET', url: `Patient/${target.body.id}` } },
    ]);
    expect(res.status).toBe(200);
    expect(res.body.entry[0].resource.subject.reference).toMatch(/^Patient\/[0-9a-f-]{36}$/);
    expect(res.body.entry[1].response.status).toBe('200 OK');
    expect(res.body.entry[2].resource.gender).toBe('female');
  });

  it('parallel identical conditional creates inside transactions leave exactly one resource', async () => {
    const tx = () =>
      postBundle('transaction', [{ fullUrl: 'urn:uuid:44444444-4444-4444-8444-444444444444', resource: patient('Par', { identifier: [{ system: 'urn:mrn', value: 'PAR-TX' }] }), request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:mrn|PAR-TX' } }]);
    const results = await Promise.all(Array.from({ length: 16 }, tx));
    expect(results.every((r) => r.status === 200)).toBe(true);
    const search = await http('GET', `${srv.base}/Patient?identifier=urn:mrn|PAR-TX`);
    expect(search.body.entry).toHaveLength(1);
    expect(results.filter((r) => r.body.entry[0].response.status === '201 Created')).toHaveLength(1);
  });
});

describe('parallel conditional updates', () => {
  it('16 identical conditional updates of a resource that does not exist yet create exactly one', async () => {
    const body = patient('CondUpd', { identifier: [{ system: 'urn:mrn', value: 'CU-1' }] });
    const results = await Promise.all(Array.from({ length: 16 }, () => http('PUT', `${srv.base}/Patient?identifier=urn:mrn|CU-1`, { body })));
    expect(results.every((r) => r.status === 200 || r.status === 201)).toBe(true);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    const search = await http('GET', `${srv.base}/Patient?identifier=urn:mrn|CU-1`);
    expect(search.body.entry).toHaveLength(1);
  });
});

describe('batch bundles', () => {
  it('processes entries independently: a failing entry does not affect the others', async () => {
    const res = await postBundle('batch', [
      { resource: patient('B1'), request: { method: 'POST', url: 'Patient' } },
      { resource: { resourceType: 'Patient', birthDate: 'yesterday' }, request: { method: 'POST', url: 'Patient' } },
      { request: { method: 'GET', url: 'Patient/does-not-exist' } },
    ]);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('batch-response');
    expect(res.body.entry.map((e: any) => e.response.status.split(' ')[0])).toEqual(['201', '400', '404']);
    expect(res.body.entry[1].response.outcome.resourceType).toBe('OperationOutcome');
    expect((await http('GET', `${srv.base}/Patient/${res.body.entry[0].resource.id}`)).status).toBe(200);
  });

  it('refuses bundles that are not batch/transaction, and over the entry limit', async () => {
    expect((await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'collection' } })).status).toBe(400);
    expect((await http('POST', srv.base, { body: patient('x') })).status).toBe(400);
    const small = await startTestServer({ MAX_BUNDLE_ENTRIES: '2' });
    try {
      const r = await http('POST', small.base, { body: { resourceType: 'Bundle', type: 'batch', entry: [1, 2, 3].map(() => ({ request: { method: 'GET', url: 'Patient/x' } })) } });
      expect(r.status).toBe(413);
    } finally {
      await small.close();
    }
  });
});
