/**
 * Insurance over HTTP against FerretDB and Redis: Coverage checks for the desk and for patients,
 * CoverageEligibilityRequest/$submit (type and instance level) answered by the payor's local rules adapter in
 * the shape billing reads (CONTRACT.md), bad requests refused with nothing stored, and two insurers' backend
 * clients that each reach exactly their own payor's Coverage and eligibility responses.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';
import { backendToken, registerBackendClient } from './support/auth.js';
import { userToken } from './support/browser.js';
import { expectOutcome, historyTotal } from './support/outcomes.js';

const EXT = 'http://medivoy.example/fhir/StructureDefinition/';
const CLASS = 'http://terminology.hl7.org/CodeSystem/coverage-class';
const CATEGORY = 'http://terminology.hl7.org/CodeSystem/ex-benefitcategory';
const PASSWORD = 'Quiet-Lantern-58!';

let srv: TestServer;
let desk: string;
let acme: string;
let borealis: string;
let unconfigured: string;
let p1: string;
let p2: string;

const rules = (plan: string | undefined, parts: Record<string, unknown>[]) => ({ url: `${EXT}payer-rules`, extension: [...(plan ? [{ url: 'plan', valueString: plan }] : []), ...parts] });

async function create(body: Record<string, unknown>, token?: string): Promise<string> {
  const res = await http('POST', `${srv.base}/${body.resourceType}`, { body, ...(token ? { token } : {}) });
  expect({ status: res.status, body: res.text.slice(0, 400) }).toMatchObject({ status: 201 });
  return `${body.resourceType}/${res.body.id}`;
}

function coverage(beneficiary: string, payor: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: 'Coverage', status: 'active', beneficiary: { reference: beneficiary }, subscriber: { reference: beneficiary }, relationship: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/subscriber-relationship', code: 'self' }] },
    subscriberId: 'M-1001', payor: [{ reference: payor }], type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EHCPOL' }] },
    class: [{ type: { coding: [{ system: CLASS, code: 'group' }] }, value: 'G-77' }, { type: { coding: [{ system: CLASS, code: 'plan' }] }, value: 'GOLD' }],
    period: { start: '2020-01-01' }, ...over,
  };
}

function request(patient: string, cov: string, insurer: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: 'CoverageEligibilityRequest', status: 'active', purpose: ['validation', 'benefits'], patient: { reference: patient },
    created: '2026-03-01', servicedDate: '2026-03-02', insurer: { reference: insurer }, insurance: [{ coverage: { reference: cov } }], ...over,
  };
}

const submit = (body: unknown, token?: string) => http('POST', `${srv.base}/CoverageEligibilityRequest/$submit`, { body, ...(token ? { token } : {}) });
const benefit = (r: any, code: string) => r.insurance[0].item[0].benefit.find((b: any) => b.type.coding[0].code === code);
const stored = async () => ({ req: await historyTotal(srv.base, 'CoverageEligibilityRequest'), res: await historyTotal(srv.base, 'CoverageEligibilityResponse') });

beforeAll(async () => {
  srv = await startTestServer();
  await srv.running.accounts.createAccount({ kind: 'system-admin', email: 'desk@clinic.example', password: PASSWORD });
  desk = (await userToken(srv.running, 'desk@clinic.example', PASSWORD, 'openid fhirUser user/*.cruds')).access_token;
  acme = await create({
    resourceType: 'Organization', name: 'Acme Health', identifier: [{ system: 'urn:payer-id', value: 'ACME01' }],
    extension: [
      rules('GOLD', [{ url: 'in-force', valueBoolean: true }, { url: 'deductible', valueMoney: { value: 100, currency: 'EUR' } }, { url: 'copay', valueMoney: { value: 20, currency: 'EUR' } }, { url: 'coinsurance', valueUnsignedInt: 10 }, { url: 'category', valueCoding: { system: CATEGORY, code: '30' } }, { url: 'category', valueCoding: { system: CATEGORY, code: '1' } }]),
      rules('BASIC', [{ url: 'in-force', valueBoolean: false }]),
    ],
  });
  borealis = await create({ resourceType: 'Organization', name: 'Borealis Insurance', extension: [{ url: `${EXT}payer-adapter`, valueCode: 'local-rules' }, rules(undefined, [{ url: 'in-force', valueBoolean: true }, { url: 'copay', valueMoney: { value: 15, currency: 'EUR' } }])] });
  unconfigured = await create({ resourceType: 'Organization', name: 'Paper Insurance' });
  p1 = await create({ resourceType: 'Patient', name: [{ family: 'One', given: ['Ann'] }], birthDate: '1980-01-01' });
  p2 = await create({ resourceType: 'Patient', name: [{ family: 'Two', given: ['Ben'] }], birthDate: '1990-01-01' });
}, 90_000);
afterAll(async () => {
  await srv?.close();
});

describe('Coverage', () => {
  it('is stored with beneficiary, subscriber, payor, member id, plan and type', async () => {
    const ref = await create(coverage(p1, acme), desk);
    const read = (await http('GET', `${srv.base}/${ref}`)).body;
    expect(read).toMatchObject({ subscriberId: 'M-1001', payor: [{ reference: acme }], beneficiary: { reference: p1 } });
  });

  it.each([
    ['an unknown payor', { payor: [{ reference: 'Organization/nobody' }] }, 'payor Organization/nobody is not known'],
    ['a payor that is not an Organization', { payor: [{ reference: 'Patient/x' }] }, 'Coverage.payor must reference'],
    ['an unknown beneficiary', { beneficiary: { reference: 'Patient/ghost' }, subscriber: { reference: 'Patient/ghost' } }, 'beneficiary Patient/ghost is not known'],
    ['no member id', { subscriberId: undefined }, 'member id'],
    ['no plan', { class: [{ type: { coding: [{ system: CLASS, code: 'group' }] }, value: 'G-77' }] }, 'plan'],
    ['no type', { type: undefined }, 'Coverage.type'],
    ['no subscriber', { subscriber: undefined }, 'subscriber'],
    ['a period ending before it starts', { period: { start: '2026-01-01', end: '2025-01-01' } }, 'ends before'],
  ])('with %s is refused (422) and nothing is stored', async (_what, over, text) => {
    const before = await historyTotal(srv.base, 'Coverage');
    const res = await http('POST', `${srv.base}/Coverage`, { body: coverage(p2, acme, over), token: desk });
    expectOutcome(res, 422);
    expect(res.body.issue[0].details.text).toContain(text);
    expect(await historyTotal(srv.base, 'Coverage')).toBe(before);
  });

  it('a patient records their own coverage, never another patient\'s (403)', async () => {
    const email = 'cora@patients.example';
    const reg = await http('POST', `${srv.url}/auth/register`, { body: { email, password: PASSWORD, givenName: 'Cora', familyName: 'Self' }, headers: { 'content-type': 'application/json' }, token: false });
    expect({ status: reg.status, body: reg.text }).toMatchObject({ status: 201 });
    const token = (await userToken(srv.running, email, PASSWORD, 'openid fhirUser user/*.cruds')).access_token;
    const me = reg.body.fhirUser as string;
    const before = await historyTotal(srv.base, 'Coverage');
    // Subscriber is the patient (so the write is within their compartment), beneficiary someone else.
    const other = await http('POST', `${srv.base}/Coverage`, { body: coverage(p1, acme, { subscriber: { reference: me } }), token });
    expectOutcome(other, 403);
    expect(await historyTotal(srv.base, 'Coverage')).toBe(before);
    const own = await http('POST', `${srv.base}/Coverage`, { body: coverage(me, acme), token });
    expect(own.status).toBe(201);
    // … and verifies it: $submit with the patient's own token.
    const res = await submit(request(me, `Coverage/${own.body.id}`, acme), token);
    expect({ status: res.status, body: res.text.slice(0, 300) }).toMatchObject({ status: 201 });
    expect(res.body.insurance[0].inforce).toBe(true);
    // A patient cannot write an eligibility answer themselves: billing trusts them.
    const forged = await http('POST', `${srv.base}/CoverageEligibilityResponse`, { token, body: { ...res.body, id: undefined, meta: undefined } });
    expectOutcome(forged, 403);
  });

  it('a payor Organization with invalid payer rules is refused (422)', async () => {
    const res = await http('POST', `${srv.base}/Organization`, { token: desk, body: { resourceType: 'Organization', name: 'Bad Rules', extension: [rules(undefined, [{ url: 'in-force', valueBoolean: true }, { url: 'coinsurance', valueUnsignedInt: 150 }])] } });
    expectOutcome(res, 422);
    expect(res.body.issue[0].details.text).toContain('coinsurance');
  });
});

describe('CoverageEligibilityRequest/$submit', () => {
  let cov1: string;
  beforeAll(async () => {
    cov1 = await create(coverage(p1, acme, { subscriberId: 'M-2001' }), desk);
  });

  it('type level: stores the request and a complete, in-force response with deductible, copay and coinsurance', async () => {
    const before = await stored();
    const res = await submit(request(p1, cov1, acme), desk);
    expect({ status: res.status, body: res.text.slice(0, 300) }).toMatchObject({ status: 201 });
    const r = res.body;
    expect(r).toMatchObject({ resourceType: 'CoverageEligibilityResponse', status: 'active', outcome: 'complete', patient: { reference: p1 }, insurer: { reference: acme }, purpose: ['validation', 'benefits'] });
    expect(r.insurance[0]).toMatchObject({ coverage: { reference: cov1 }, inforce: true });
    expect(r.insurance[0].item[0].category.coding[0]).toMatchObject({ system: CATEGORY, code: '30' });
    expect(benefit(r, 'deductible')).toEqual({ type: { coding: [expect.objectContaining({ system: 'http://terminology.hl7.org/CodeSystem/benefit-type', code: 'deductible' })] }, allowedMoney: { value: 100, currency: 'EUR' } });
    expect(benefit(r, 'copay')).toMatchObject({ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/benefit-type' }] }, allowedMoney: { value: 20, currency: 'EUR' } });
    expect(benefit(r, 'coinsurance')).toMatchObject({ type: { coding: [{ system: 'http://medivoy.example/fhir/CodeSystem/benefit-type', code: 'coinsurance' }] }, allowedUnsignedInt: 10 });
    // The stored response and the request it answers.
    const readBack = await http('GET', `${srv.base}/CoverageEligibilityResponse/${r.id}`);
    expect(readBack.body.insurance).toEqual(r.insurance);
    const req = await http('GET', `${srv.base}/${r.request.reference}`);
    expect(req.body).toMatchObject({ resourceType: 'CoverageEligibilityRequest', insurance: [{ coverage: { reference: cov1 } }] });
    expect(await stored()).toEqual({ req: before.req + 1, res: before.res + 1 });
    // Billing's lookup (CONTRACT.md): the patient's newest complete response for that coverage.
    const found = await http('GET', `${srv.base}/CoverageEligibilityResponse?patient=${p1}&outcome=complete&_sort=-_lastUpdated`);
    expect(found.body.entry[0].resource.id).toBe(r.id);
  });

  it('instance level: submits a stored request; the body may also be Parameters with `resource`', async () => {
    const reqRef = await create(request(p1, cov1, acme, { item: [{ category: { coding: [{ system: CATEGORY, code: '1' }] } }, { category: { coding: [{ system: CATEGORY, code: '35' }] } }] }), desk);
    const res = await http('POST', `${srv.base}/${reqRef}/$submit`, { token: desk });
    expect(res.status).toBe(201);
    expect(res.body.request.reference).toBe(reqRef);
    const [medical, dental] = res.body.insurance[0].item;
    expect(medical.category.coding[0].code).toBe('1');
    expect(medical.excluded).toBeUndefined();
    expect(medical.benefit).toHaveLength(3);
    expect(dental).toMatchObject({ category: { coding: [{ code: '35' }] }, excluded: true });
    expect(dental.benefit).toBeUndefined();
    const viaParameters = await submit({ resourceType: 'Parameters', parameter: [{ name: 'resource', resource: request(p1, cov1, acme) }] }, desk);
    expect(viaParameters.status).toBe(201);
  });

  it('a plan that is not in force, or a coverage period that ended, is answered inforce=false', async () => {
    const basic = await create(coverage(p1, acme, { class: [{ type: { coding: [{ system: CLASS, code: 'plan' }] }, value: 'BASIC' }] }), desk);
    let res = await submit(request(p1, basic, acme), desk);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ outcome: 'complete', insurance: [{ inforce: false }] });
    expect(res.body.insurance[0].item[0].benefit).toBeUndefined();
    const ended = await create(coverage(p1, acme, { period: { start: '2020-01-01', end: '2025-12-31' } }), desk);
    res = await submit(request(p1, ended, acme), desk);
    expect(res.body.insurance[0].inforce).toBe(false);
    // An unknown plan: the payer's error, stored as outcome "error".
    const unknownPlan = await create(coverage(p1, acme, { class: [{ type: { coding: [{ system: CLASS, code: 'plan' }] }, value: 'PLATINUM' }] }), desk);
    res = await submit(request(p1, unknownPlan, acme), desk);
    expect(res.body).toMatchObject({ outcome: 'error', insurance: [{ inforce: false }], error: [{ code: { coding: [{ code: 'a001' }] } }] });
  });

  it('the payor\'s own adapter answers (per payor configuration)', async () => {
    const cov = await create(coverage(p2, borealis, { subscriberId: 'B-9' }), desk);
    const res = await submit(request(p2, cov, borealis), desk);
    expect(res.status).toBe(201);
    expect(res.body.insurance[0].item[0].benefit).toEqual([{ type: { coding: [expect.objectContaining({ code: 'copay' })] }, allowedMoney: { value: 15, currency: 'EUR' } }]);
  });

  describe('bad requests: an OperationOutcome and nothing stored', () => {
    it.each<[string, () => unknown, number, string]>([
      ['an unknown payor', () => request(p1, cov1, 'Organization/nobody'), 422, 'payor Organization/nobody is not known'],
      ['an insurer that is not the coverage\'s payor', () => request(p1, cov1, borealis), 422, 'is not the payor of'],
      ['the coverage of another patient', () => request(p2, cov1, acme), 422, 'is not a coverage of'],
      ['an unknown coverage', () => request(p1, 'Coverage/none', acme), 422, 'Coverage/none is not known'],
      ['no insurance', () => request(p1, cov1, acme, { insurance: [] }), 422, 'exactly one insurance'],
      ['an unsupported purpose', () => request(p1, cov1, acme, { purpose: ['discovery'] }), 422, 'purpose'],
      ['a cancelled request', () => request(p1, cov1, acme, { status: 'cancelled' }), 422, 'active'],
      ['an item without category', () => request(p1, cov1, acme, { item: [{ productOrService: { text: 'x' } }] }), 422, 'benefit category'],
      ['an invalid status code', () => request(p1, cov1, acme, { status: 'bogus' }), 400, ''],
      ['a missing patient element', () => request(p1, cov1, acme, { patient: undefined }), 400, ''],
      ['a body that is not a request', () => ({ resourceType: 'Patient' }), 400, 'needs a CoverageEligibilityRequest'],
      ['a request with an id', () => request(p1, cov1, acme, { id: 'abc' }), 400, 'has no id'],
    ])('%s', async (_what, body, status, text) => {
      const before = await stored();
      const res = await submit(body(), desk);
      expectOutcome(res, status);
      if (text) expect(res.body.issue.map((i: any) => i.details?.text).join(' ')).toContain(text);
      expect(await stored()).toEqual(before);
    });

    it('a payor without eligibility configuration', async () => {
      const cov = await create(coverage(p2, unconfigured), desk);
      const before = await stored();
      const res = await submit(request(p2, cov, unconfigured), desk);
      expectOutcome(res, 422);
      expect(res.body.issue[0].details.text).toContain('no eligibility configuration');
      expect(await stored()).toEqual(before);
    });

    it('an unknown request id (404) and a body on the instance level (400)', async () => {
      expectOutcome(await http('POST', `${srv.base}/CoverageEligibilityRequest/nope/$submit`, { token: desk }), 404);
      const reqRef = await create(request(p1, cov1, acme), desk);
      expectOutcome(await http('POST', `${srv.base}/${reqRef}/$submit`, { token: desk, body: request(p1, cov1, acme) }), 400);
    });
  });
});

describe('insurer backend clients bound to their payor', () => {
  const INSURER_SCOPES = 'system/Coverage.rs system/CoverageEligibilityResponse.rs';
  let tokenA: string;
  let tokenB: string;
  let covA1: string;
  let covA2: string;
  let covB: string;
  const ids = (bundle: any) => (bundle.entry ?? []).filter((e: any) => e.search?.mode !== 'include').map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort();

  async function insurerToken(payor: string, scopes = INSURER_SCOPES): Promise<string> {
    const c = await registerBackendClient(srv.running, scopes);
    // Bind it to its payor (as POST /auth/admin/clients or `npm run register-client -- --payor` would).
    const row = await srv.running.mongo.db.collection<{ _id: string; payload: string }>('oidc_Client').findOne({ _id: c.clientId });
    const meta = JSON.parse(row!.payload);
    await srv.running.auth.registerClient({ kind: 'backend', client_id: c.clientId, jwks: meta.jwks, allowed_scopes: scopes, payor_organization: payor });
    return (await backendToken(srv.running, c, scopes)).access_token;
  }

  beforeAll(async () => {
    const p3 = await create({ resourceType: 'Patient', name: [{ family: 'Three' }] });
    covA1 = await create(coverage(p3, acme, { subscriberId: 'A-1' }), desk);
    covA2 = await create(coverage(p2, acme, { subscriberId: 'A-2' }), desk);
    covB = await create(coverage(p3, borealis, { subscriberId: 'B-1' }), desk);
    expect((await submit(request(p3, covA1, acme), desk)).status).toBe(201);
    expect((await submit(request(p3, covB, borealis), desk)).status).toBe(201);
    tokenA = await insurerToken(acme);
    tokenB = await insurerToken(borealis);
  });

  it('registration refuses an unknown payor and a payor on a non-backend client', async () => {
    await expect(srv.running.auth.registerClient({ kind: 'backend', jwks: { keys: [] }, allowed_scopes: INSURER_SCOPES, payor_organization: 'Organization/ghost' })).rejects.toMatchObject({ status: 400 });
    await expect(srv.running.auth.registerClient({ kind: 'public', redirect_uris: ['http://a.example/cb'], allowed_scopes: 'openid', payor_organization: acme })).rejects.toMatchObject({ status: 400 });
    const json = { 'content-type': 'application/json' };
    const res = await http('POST', `${srv.url}/auth/admin/clients`, { token: desk, headers: json, body: { kind: 'backend', jwks: { keys: [] }, allowed_scopes: INSURER_SCOPES, payor_organization: 'Patient/x' } });
    expect(res.status).toBe(400);
    expect(res.text).toContain('payor_organization must be Organization/[id]');
    const { privateKey: _k, ...c } = await registerBackendClient(srv.running, INSURER_SCOPES);
    const row = await srv.running.mongo.db.collection<{ _id: string; payload: string }>('oidc_Client').findOne({ _id: c.clientId });
    const ok = await http('POST', `${srv.url}/auth/admin/clients`, { token: desk, headers: json, body: { kind: 'backend', client_id: c.clientId, jwks: JSON.parse(row!.payload).jwks, allowed_scopes: INSURER_SCOPES, payor_organization: acme } });
    expect({ status: ok.status, body: ok.text }).toMatchObject({ status: 201 });
    expect(ok.body.payor_organization).toBe(acme);
  });

  it('writes of an insurer client stay within its payor', async () => {
    const writer = await insurerToken(acme, 'system/Coverage.cruds');
    const before = await historyTotal(srv.base, 'Coverage');
    expectOutcome(await http('POST', `${srv.base}/Coverage`, { token: writer, body: coverage(p2, borealis) }), 403);
    const current = (await http('GET', `${srv.base}/${covB}`)).body;
    expectOutcome(await http('PUT', `${srv.base}/${covB}`, { token: writer, body: { ...current, status: 'cancelled' } }), 403);
    expectOutcome(await http('DELETE', `${srv.base}/${covB}`, { token: writer }), 404);
    expect(await historyTotal(srv.base, 'Coverage')).toBe(before);
    expect((await http('GET', `${srv.base}/${covB}`)).body.status).toBe('active');
  });

  it('each reads exactly its own payor\'s Coverage, in searches and reads', async () => {
    const all = await http('GET', `${srv.base}/Coverage?_count=100`, { token: tokenA });
    expect(all.status).toBe(200);
    const acmeCoverages = ids((await http('GET', `${srv.base}/Coverage?payor=${acme}&_count=100`)).body); // system view
    expect(ids(all.body)).toEqual(acmeCoverages);
    expect(ids(all.body)).toEqual(expect.arrayContaining([covA1, covA2]));
    expect(ids(all.body)).not.toContain(covB);
    const borealisCoverages = ids((await http('GET', `${srv.base}/Coverage?payor=${borealis}&_count=100`)).body);
    expect(borealisCoverages).toContain(covB);
    expect(ids((await http('GET', `${srv.base}/Coverage?_count=100`, { token: tokenB })).body)).toEqual(borealisCoverages);
    // Asking for the other payor's coverage by criteria finds nothing; by id it is "not known".
    expect(ids((await http('GET', `${srv.base}/Coverage?payor=${borealis}`, { token: tokenA })).body)).toEqual([]);
    expect((await http('GET', `${srv.base}/${covA1}`, { token: tokenA })).status).toBe(200);
    expectOutcome(await http('GET', `${srv.base}/${covB}`, { token: tokenA }), 404);
    expectOutcome(await http('GET', `${srv.base}/${covA1}`, { token: tokenB }), 404);
    expectOutcome(await http('GET', `${srv.base}/${covB}/_history`, { token: tokenA }), 404);
    // Includes do not bring along patients, and type-wide history is not open to it.
    const inc = await http('GET', `${srv.base}/Coverage?_include=Coverage:beneficiary`, { token: tokenA });
    expect((inc.body.entry ?? []).every((e: any) => e.resource.resourceType === 'Coverage')).toBe(true);
    expectOutcome(await http('GET', `${srv.base}/Coverage/_history`, { token: tokenA }), 403);
  });

  it('each reads only its own eligibility responses, and nothing else', async () => {
    const a = (await http('GET', `${srv.base}/CoverageEligibilityResponse?_count=100`, { token: tokenA })).body;
    const b = (await http('GET', `${srv.base}/CoverageEligibilityResponse?_count=100`, { token: tokenB })).body;
    expect(a.entry.length).toBeGreaterThan(0);
    expect(a.entry.every((e: any) => e.resource.insurer.reference === acme)).toBe(true);
    expect(b.entry.length).toBeGreaterThan(0);
    expect(b.entry.every((e: any) => e.resource.insurer.reference === borealis)).toBe(true);
    const everyone = (await http('GET', `${srv.base}/CoverageEligibilityResponse?_count=100`)).body.entry.length;
    expect(a.entry.length + b.entry.length).toBe(everyone);
    expectOutcome(await http('GET', `${srv.base}/CoverageEligibilityResponse/${a.entry[0].resource.id}`, { token: tokenB }), 404);
    // No other patient data: not in its scopes…
    expectOutcome(await http('GET', `${srv.base}/Patient`, { token: tokenA }), 403);
    expectOutcome(await http('GET', `${srv.base}/${p1}`, { token: tokenA }), 403);
    // …and not even when an insurer client is given broader system scopes.
    const broad = await insurerToken(acme, 'system/*.rs');
    expect(ids((await http('GET', `${srv.base}/Patient`, { token: broad })).body)).toEqual([]);
    expectOutcome(await http('GET', `${srv.base}/${p1}`, { token: broad }), 404);
    expect(ids((await http('GET', `${srv.base}/CoverageEligibilityRequest`, { token: broad })).body)).toEqual([]);
    expect(ids((await http('GET', `${srv.base}/Coverage?_count=100`, { token: broad })).body)).toEqual(ids((await http('GET', `${srv.base}/Coverage?_count=100`, { token: tokenA })).body));
    // Organizations are not patient data: readable as for any system client.
    expect((await http('GET', `${srv.base}/${acme}`, { token: broad })).status).toBe(200);
  });
});
