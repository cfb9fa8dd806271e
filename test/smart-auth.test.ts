/**
 * SMART App Launch and Backend Services against the real server: discovery, authorization code + PKCE
 * with sign-in and consent pages, EHR launch, refresh, introspection, revocation, client_credentials with
 * private_key_jwt (RS384/ES384, replay, exp limit), and scope enforcement on the FHIR API.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeJwt } from 'jose';
import { http, startTestServer, type TestServer } from './support/server.js';
import { backendToken, clientAssertion, registerBackendClient, tokenRequest } from './support/auth.js';
import { authorize, Browser, pkce } from './support/browser.js';

let srv: TestServer;
let issuer: string;
const REDIRECT = 'http://app.example/callback';
const PASSWORD = 'Blue-Harbor-72!';

let alice: { id: string; fhirUser: string }; // a patient who registered herself
let bob: { id: string; fhirUser: string }; // another patient
let carol: { id: string; fhirUser: string }; // a second patient of Dr House
let drHouse: { fhirUser: string };
let appId: string;

beforeAll(async () => {
  srv = await startTestServer();
  issuer = srv.running.auth.issuer;
  const register = async (givenName: string, familyName: string, email: string) =>
    (await http('POST', `${srv.url}/auth/register`, { body: { email, password: PASSWORD, givenName, familyName }, headers: { 'content-type': 'application/json' }, token: false })).body;
  alice = await register('Alice', 'Anders', 'alice@example.org');
  bob = await register('Bob', 'Berg', 'bob@example.org');
  carol = await register('Carol', 'Castro', 'carol@example.org');
  const doc = await srv.running.accounts.createAccount({ kind: 'practitioner', email: 'house@example.org', password: PASSWORD, person: { givenName: 'Gregory', familyName: 'House' } });
  drHouse = { fhirUser: doc.fhirUser! };
  // Dr House has appointments with Alice and Carol, none with Bob.
  for (const p of [alice, carol]) {
    await http('POST', `${srv.base}/Appointment`, {
      body: { resourceType: 'Appointment', status: 'booked', start: '2030-01-01T09:00:00Z', end: '2030-01-01T09:30:00Z', participant: [{ actor: { reference: p.fhirUser }, status: 'accepted' }, { actor: { reference: drHouse.fhirUser }, status: 'accepted' }] },
    });
  }
  for (const [p, category] of [[alice, 'laboratory'], [alice, 'vital-signs'], [bob, 'laboratory']] as const) {
    await http('POST', `${srv.base}/Observation`, {
      body: { resourceType: 'Observation', status: 'final', category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: category }] }], code: { coding: [{ system: 'http://loinc.org', code: '2339-0' }] }, subject: { reference: p.fhirUser } },
    });
  }
  const app = await srv.running.auth.registerClient({ kind: 'public', redirect_uris: [REDIRECT], allowed_scopes: 'openid fhirUser launch launch/patient offline_access online_access patient/*.cruds user/*.cruds patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory', client_name: 'Test app' });
  appId = app.client_id as string;
}, 60_000);
afterAll(async () => {
  await srv?.close();
});

/** A standalone launch by `email`, exchanging the code; returns the token response. */
async function launch(email: string, scope: string, extra: Record<string, string> = {}, patient?: string) {
  const { verifier, challenge } = pkce();
  const r = await authorize({
    issuer, email, password: PASSWORD, patient,
    params: { response_type: 'code', client_id: appId, redirect_uri: REDIRECT, scope, state: 'st-1', aud: srv.base, code_challenge: challenge, code_challenge_method: 'S256', ...extra },
  });
  expect(r.error).toBeUndefined();
  expect(r.state).toBe('st-1');
  const t = await tokenRequest(`${issuer}/token`, { grant_type: 'authorization_code', code: r.code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: appId });
  expect(t.status).toBe(200);
  return t;
}

describe('discovery', () => {
  it('serves .well-known/smart-configuration as JSON to anyone, and the CapabilityStatement names the endpoints', async () => {
    for (const accept of [undefined, 'application/fhir+json', 'text/html']) {
      const res = await fetch(`${srv.base}/.well-known/smart-configuration`, { headers: accept ? { accept, origin: 'https://random.example' } : {} });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const conf: any = await res.json();
      expect(conf.code_challenge_methods_supported).toEqual(['S256']);
      expect(conf.capabilities).toEqual(expect.arrayContaining(['launch-standalone', 'launch-ehr', 'client-confidential-asymmetric', 'permission-v2', 'context-standalone-patient']));
      for (const k of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'introspection_endpoint', 'revocation_endpoint']) expect(() => new URL(conf[k])).not.toThrow();
      expect(conf.token_endpoint_auth_signing_alg_values_supported).toEqual(expect.arrayContaining(['RS384', 'ES384']));
    }
    const oidc: any = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
    expect(oidc.issuer).toBe(issuer);
    const cs = (await http('GET', `${srv.base}/metadata`, { token: false })).body;
    const ext = cs.rest[0].security.extension.find((e: any) => e.url === 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris');
    expect(ext.extension.find((e: any) => e.url === 'token').valueUri).toBe(`${issuer}/token`);
  });

  it('answers anonymous FHIR requests with 401 and a Bearer challenge, except /metadata', async () => {
    const res = await http('GET', `${srv.base}/Patient`, { token: false });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect((await http('GET', `${srv.base}/Patient`, { token: 'not-a-token' })).headers.get('www-authenticate')).toMatch(/invalid_token/);
    expect((await http('GET', `${srv.base}/metadata`, { token: false })).status).toBe(200);
  });
});

describe('standalone launch (authorization code + PKCE)', () => {
  it('a patient signs in, consents and gets a token for their own compartment, with an id_token naming them', async () => {
    const t = await launch('alice@example.org', 'openid fhirUser launch/patient patient/*.cruds');
    expect(t.headers.get('cache-control')).toMatch(/no-store/);
    expect(t.headers.get('pragma')).toBe('no-cache');
    expect(t.body.token_type.toLowerCase()).toBe('bearer');
    expect(t.body.expires_in).toBeLessThanOrEqual(3600);
    expect(t.body.patient).toBe(alice.fhirUser.split('/')[1]);
    expect(t.body.need_patient_banner).toBe(true);
    expect(t.body.scope.split(' ')).toEqual(expect.arrayContaining(['patient/*.cruds', 'launch/patient', 'openid', 'fhirUser']));
    expect(decodeJwt(t.body.id_token).fhirUser).toBe(alice.fhirUser);
    const token = t.body.access_token;

    expect((await http('GET', `${srv.base}/${alice.fhirUser}`, { token })).status).toBe(200);
    expect((await http('GET', `${srv.base}/${bob.fhirUser}`, { token })).status).toBe(404); // not even its existence
    const obs = (await http('GET', `${srv.base}/Observation`, { token })).body;
    expect(obs.entry.map((e: any) => e.resource.subject.reference)).toEqual([alice.fhirUser, alice.fhirUser]);
    expect((await http('GET', `${srv.base}/Observation?patient=${bob.fhirUser}`, { token })).body.entry ?? []).toEqual([]);
    const own = await http('POST', `${srv.base}/Observation`, { token, body: { resourceType: 'Observation', status: 'final', code: { text: 'self-reported' }, subject: { reference: alice.fhirUser } } });
    expect(own.status).toBe(201);
    const other = await http('POST', `${srv.base}/Observation`, { token, body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: bob.fhirUser } } });
    expect(other.status).toBe(403);
    // A transaction is checked entry by entry: one entry outside the compartment fails it all.
    const tx = await http('POST', srv.base, {
      token,
      body: { resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: { resourceType: 'Observation', status: 'final', code: { text: 'a' }, subject: { reference: alice.fhirUser } }, request: { method: 'POST', url: 'Observation' } },
        { resource: { resourceType: 'Observation', status: 'final', code: { text: 'b' }, subject: { reference: bob.fhirUser } }, request: { method: 'POST', url: 'Observation' } },
      ] },
    });
    expect(tx.status).toBe(403);
  }, 30_000);

  it('enforces the interaction letters (v2) and v1 scopes', async () => {
    let t = await launch('alice@example.org', 'launch/patient patient/Observation.r');
    expect((await http('GET', `${srv.base}/Observation`, { token: t.body.access_token })).status).toBe(403);
    t = await launch('alice@example.org', 'launch/patient patient/*.read');
    expect((await http('GET', `${srv.base}/Observation`, { token: t.body.access_token })).status).toBe(200);
    expect((await http('POST', `${srv.base}/Observation`, { token: t.body.access_token, body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: alice.fhirUser } } })).status).toBe(403);
  }, 30_000);

  it('granular scopes restrict searches and reads to what their query allows', async () => {
    const t = await launch('alice@example.org', 'launch/patient patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory');
    const token = t.body.access_token;
    const labs = (await http('GET', `${srv.base}/Observation`, { token })).body.entry;
    expect(labs).toHaveLength(1);
    expect(labs[0].resource.category[0].coding[0].code).toBe('laboratory');
    expect((await http('GET', `${srv.base}/Observation?category=vital-signs`, { token })).body.entry ?? []).toEqual([]);
  }, 30_000);

  it('a granular scope with a bare patient id reaches that patient\'s resources (indexed only as Patient/id)', async () => {
    const aliceId = alice.fhirUser.split('/')[1]!;
    const token = (await launch('alice@example.org', `launch/patient patient/Observation.rs?patient=${aliceId}`)).body.access_token;
    const found = (await http('GET', `${srv.base}/Observation`, { token })).body.entry;
    expect(found.length).toBeGreaterThan(0);
    expect((await http('GET', `${srv.base}/Observation/${found[0].resource.id}`, { token })).status).toBe(200);
    const other = (await launch('alice@example.org', 'launch/patient patient/Observation.rs?patient=someone-else')).body.access_token;
    expect((await http('GET', `${srv.base}/Observation/${found[0].resource.id}`, { token: other })).status).toBe(404);
  }, 30_000);

  it('a practitioner picks a patient they care for, and cannot pick another', async () => {
    const t = await launch('house@example.org', 'openid fhirUser launch/patient patient/*.rs', {}, alice.fhirUser.split('/')[1]);
    expect(t.body.patient).toBe(alice.fhirUser.split('/')[1]);
    expect(decodeJwt(t.body.id_token).fhirUser).toBe(drHouse.fhirUser);
    const { challenge } = pkce();
    const refused = await authorize({
      issuer, email: 'house@example.org', password: PASSWORD, patient: bob.fhirUser.split('/')[1],
      params: { response_type: 'code', client_id: appId, redirect_uri: REDIRECT, scope: 'launch/patient patient/*.rs', state: 's', aud: srv.base, code_challenge: challenge, code_challenge_method: 'S256' },
    });
    expect(refused.error).toBe('access_denied');
    // user/ scopes: the practitioner reaches Alice (an appointment), not Bob.
    const u = await launch('house@example.org', 'user/*.rs');
    expect((await http('GET', `${srv.base}/${alice.fhirUser}`, { token: u.body.access_token })).status).toBe(200);
    expect((await http('GET', `${srv.base}/${bob.fhirUser}`, { token: u.body.access_token })).status).toBe(404);
    const patients = (await http('GET', `${srv.base}/Patient`, { token: u.body.access_token })).body;
    expect(patients.entry.map((e: any) => `Patient/${e.resource.id}`).sort()).toEqual([alice.fhirUser, carol.fhirUser].sort());
    // Searches pinned to patients (checked one by one instead of listing every linked patient) give the same answers.
    const ids = async (query: string) => ((await http('GET', `${srv.base}/${query}`, { token: u.body.access_token })).body.entry ?? []).map((e: any) => `${e.resource.resourceType}/${e.resource.id}`);
    const [aliceId, bobId] = [alice.fhirUser.split('/')[1], bob.fhirUser.split('/')[1]];
    expect(await ids(`Patient?_id=${aliceId}`)).toEqual([alice.fhirUser]);
    expect(await ids(`Patient?_id=${bobId}`)).toEqual([]);
    expect(await ids(`Patient?_id=${aliceId},${bobId}`)).toEqual([alice.fhirUser]);
    const ownAppointments = await ids(`Appointment?patient=${alice.fhirUser}`);
    expect(ownAppointments.length).toBeGreaterThan(0);
    expect(await ids(`Appointment?patient=${aliceId}`)).toEqual(ownAppointments);
    expect(await ids(`Patient/${aliceId}/Appointment`)).toEqual(ownAppointments);
    const bobsAppointment = await http('POST', `${srv.base}/Appointment`, {
      body: { resourceType: 'Appointment', status: 'booked', start: '2031-01-01T10:00:00Z', end: '2031-01-01T10:30:00Z', participant: [{ actor: { reference: bob.fhirUser }, status: 'accepted' }] },
    });
    expect(bobsAppointment.status).toBe(201);
    expect(await ids(`Appointment?patient=${bob.fhirUser}`)).toEqual([]);
    expect(await ids(`Appointment?patient=${alice.fhirUser},${bob.fhirUser}`)).toEqual(ownAppointments);
    expect(await ids(`Patient/${bobId}/Appointment`)).toEqual([]);
  }, 30_000);

  it('refuses a missing PKCE challenge, the plain method, a foreign aud, a wrong verifier and a reused code', async () => {
    const base = { response_type: 'code', client_id: appId, redirect_uri: REDIRECT, scope: 'launch/patient patient/*.rs', state: 's', aud: srv.base };
    const browser = new Browser();
    for (const params of [base, { ...base, code_challenge: 'x'.repeat(43), code_challenge_method: 'plain' }, { ...base, aud: 'https://evil.example/fhir', code_challenge: pkce().challenge, code_challenge_method: 'S256' }]) {
      const res = await browser.get(`${issuer}/authorize?${new URLSearchParams(params)}`);
      const to = new URL(res.headers.get('location') ?? 'http://none/');
      expect(to.searchParams.get('error')).toMatch(/invalid_request|invalid_target/);
      expect(to.searchParams.get('code')).toBeNull();
    }
    const { verifier, challenge } = pkce();
    const r = await authorize({ issuer, email: 'alice@example.org', password: PASSWORD, params: { ...base, code_challenge: challenge, code_challenge_method: 'S256' } });
    const wrong = await tokenRequest(`${issuer}/token`, { grant_type: 'authorization_code', code: r.code!, redirect_uri: REDIRECT, code_verifier: pkce().verifier, client_id: appId });
    expect(wrong.body.error).toBe('invalid_grant');
    const r2 = await authorize({ issuer, email: 'alice@example.org', password: PASSWORD, params: { ...base, code_challenge: challenge, code_challenge_method: 'S256' } });
    const ok = await tokenRequest(`${issuer}/token`, { grant_type: 'authorization_code', code: r2.code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: appId });
    expect(ok.status).toBe(200);
    const again = await tokenRequest(`${issuer}/token`, { grant_type: 'authorization_code', code: r2.code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: appId });
    expect(again.body.error).toBe('invalid_grant');
  }, 30_000);

  it('a user who denies consent sends the app access_denied', async () => {
    const { challenge } = pkce();
    const r = await authorize({
      issuer, email: 'alice@example.org', password: PASSWORD, decision: 'deny',
      params: { response_type: 'code', client_id: appId, redirect_uri: REDIRECT, scope: 'launch/patient patient/*.rs', state: 's', aud: srv.base, code_challenge: challenge, code_challenge_method: 'S256' },
    });
    expect(r.error).toBe('access_denied');
  });

  it('offline_access gives a refresh token; refresh keeps the context; revocation ends access at once', async () => {
    const t = await launch('alice@example.org', 'launch/patient patient/*.rs offline_access');
    expect(t.body.refresh_token).toBeDefined();
    const r = await tokenRequest(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: t.body.refresh_token, client_id: appId });
    expect(r.status).toBe(200);
    expect(r.body.patient).toBe(alice.fhirUser.split('/')[1]);
    expect(r.body.scope.split(' ')).toContain('patient/*.rs');
    const broader = await tokenRequest(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: r.body.refresh_token ?? t.body.refresh_token, client_id: appId, scope: 'patient/*.cruds' });
    expect(broader.status).toBe(400);

    const token = r.body.access_token;
    expect((await http('GET', `${srv.base}/${alice.fhirUser}`, { token })).status).toBe(200);
    const revoke = await fetch(`${issuer}/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, client_id: appId }) });
    expect(revoke.status).toBe(200);
    expect((await http('GET', `${srv.base}/${alice.fhirUser}`, { token })).status).toBe(401);
  }, 30_000);
});

describe('EHR launch', () => {
  it('binds each launch to its own patient, even in the same browser session', async () => {
    const clinician = await launch('house@example.org', 'user/*.rs');
    const browser = new Browser();
    const patients: string[] = [];
    for (const p of [alice, carol]) {
      const l = await http('POST', `${srv.url}/auth/launch`, { token: clinician.body.access_token, body: { patient: p.fhirUser.split('/')[1] }, headers: { 'content-type': 'application/json' } });
      expect(l.status).toBe(201);
      expect(l.body.iss).toBe(srv.base);
      const { verifier, challenge } = pkce();
      const r = await authorize({
        issuer, browser, email: 'house@example.org', password: PASSWORD,
        params: { response_type: 'code', client_id: appId, redirect_uri: REDIRECT, scope: 'launch patient/*.rs openid fhirUser', state: 's', aud: srv.base, launch: l.body.launch, code_challenge: challenge, code_challenge_method: 'S256' },
      });
      const t = await tokenRequest(`${issuer}/token`, { grant_type: 'authorization_code', code: r.code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: appId });
      expect(t.body.need_patient_banner).toBe(false);
      expect(t.body.smart_style_url).toMatch(/^http/);
      patients.push(t.body.patient);
    }
    expect(patients).toEqual([alice.fhirUser.split('/')[1], carol.fhirUser.split('/')[1]]);
    // The practitioner cannot open an EHR launch for a patient outside their reach.
    const l2 = await http('POST', `${srv.url}/auth/launch`, { token: clinician.body.access_token, body: { patient: bob.fhirUser.split('/')[1] }, headers: { 'content-type': 'application/json' } });
    expect(l2.status).toBe(404);
    // An unknown launch id is refused.
    const { challenge } = pkce();
    const res = await browser.get(`${issuer}/authorize?${new URLSearchParams({ response_type: 'code', client_id: appId, redirect_uri: REDIRECT, scope: 'launch patient/*.rs', state: 's', aud: srv.base, launch: 'nope', code_challenge: challenge, code_challenge_method: 'S256' })}`);
    expect(new URL(res.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
  }, 30_000);
});

describe('backend services (client_credentials + private_key_jwt)', () => {
  it.each(['ES384', 'RS384'] as const)('issues a short-lived %s token limited to the client’s registered scopes', async (alg) => {
    const client = await registerBackendClient(srv.running, 'system/Observation.rs', alg);
    const t = await backendToken(srv.running, client, 'system/Observation.rs system/Patient.rs');
    expect(t.expires_in).toBeLessThanOrEqual(300);
    expect(t.scope).toBe('system/Observation.rs');
    expect((t as any).refresh_token).toBeUndefined();
    expect((await http('GET', `${srv.base}/Observation`, { token: t.access_token })).status).toBe(200);
    expect((await http('GET', `${srv.base}/${alice.fhirUser}`, { token: t.access_token })).status).toBe(403);
  });

  it('refuses a replayed assertion, one expiring more than 5 minutes ahead, a wrong audience and sub ≠ iss', async () => {
    const client = await registerBackendClient(srv.running, 'system/*.rs');
    const tokenUrl = `${issuer}/token`;
    const form = (assertion: string) => ({ grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion });
    const once = await clientAssertion(client, tokenUrl);
    expect((await tokenRequest(tokenUrl, form(once))).status).toBe(200);
    const replay = await tokenRequest(tokenUrl, form(once));
    expect(replay.body.error).toBe('invalid_client');
    for (const claims of [{ exp: Math.floor(Date.now() / 1000) + 600 }, { aud: 'https://elsewhere.example/token' }, { sub: 'someone-else' }]) {
      const res = await tokenRequest(tokenUrl, form(await clientAssertion(client, tokenUrl, claims)));
      expect({ claims, error: res.body.error }).toEqual({ claims, error: 'invalid_client' });
    }
  });

  it('introspection reports an active token with its scope and client, and an unknown one as inactive', async () => {
    const client = await registerBackendClient(srv.running, 'system/*.rs');
    const t = await backendToken(srv.running, client, 'system/*.rs');
    const tokenUrl = `${issuer}/token`;
    const introspect = async (token: string) =>
      (await tokenRequest(`${issuer}/introspect`, { token, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await clientAssertion(client, `${issuer}/introspect`) })).body;
    void tokenUrl;
    const active = await introspect(t.access_token);
    expect(active).toMatchObject({ active: true, scope: 'system/*.rs', client_id: client.clientId });
    expect(typeof active.exp).toBe('number');
    expect(await introspect('garbage')).toEqual({ active: false });
  });
});

describe('operators and administrators', () => {
  it('administrators create accounts and register clients over the API; others may not', async () => {
    const { userToken } = await import('./support/browser.js');
    await http('PUT', `${srv.base}/Organization/adm-org`, { body: { resourceType: 'Organization', id: 'adm-org', name: 'Admin Org' } });
    await srv.running.accounts.createAccount({ kind: 'system-admin', email: 'root@example.org', password: PASSWORD });
    await srv.running.accounts.createAccount({ kind: 'hospital-admin', email: 'hadmin@example.org', password: PASSWORD, organization: 'Organization/adm-org' });
    const root = (await userToken(srv.running, 'root@example.org', PASSWORD, 'user/*.cruds')).access_token;
    const hadmin = (await userToken(srv.running, 'hadmin@example.org', PASSWORD, 'user/*.cruds')).access_token;
    const patient = (await userToken(srv.running, 'alice@example.org', PASSWORD, 'launch/patient patient/*.rs')).access_token;
    const json = { 'content-type': 'application/json' };
    const newDoc = { kind: 'practitioner', email: 'wilson@example.org', password: PASSWORD, givenName: 'James', familyName: 'Wilson' };
    expect((await http('POST', `${srv.url}/auth/admin/accounts`, { body: newDoc, headers: json, token: patient })).status).toBe(403);
    expect((await http('POST', `${srv.url}/auth/admin/accounts`, { body: { ...newDoc, kind: 'system-admin' }, headers: json, token: hadmin })).status).toBe(403);
    const created = await http('POST', `${srv.url}/auth/admin/accounts`, { body: newDoc, headers: json, token: hadmin });
    expect(created.status).toBe(201);
    expect(created.body.fhirUser).toMatch(/^Practitioner\//);
    // The new practitioner signs in.
    const wilson = await userToken(srv.running, 'wilson@example.org', PASSWORD, 'user/*.rs openid fhirUser');
    expect(decodeJwt(wilson.id_token as string).fhirUser).toBe(created.body.fhirUser);

    const reg = { kind: 'backend', allowed_scopes: 'system/Coverage.rs', jwks: { keys: [(await registerBackendClient(srv.running, 'system/Coverage.rs')).privateKey.export({ format: 'jwk' })].map(({ d: _d, ...pub }: any) => ({ ...pub, kid: 'k1', alg: 'ES384' })) } };
    expect((await http('POST', `${srv.url}/auth/admin/clients`, { body: reg, headers: json, token: hadmin })).status).toBe(403);
    const client = await http('POST', `${srv.url}/auth/admin/clients`, { body: reg, headers: json, token: root });
    expect(client.status).toBe(201);
    expect(client.body.client_id).toMatch(/^mvy-/);
  }, 60_000);

  it('a confidential client exchanges its code with its secret, and not without it', async () => {
    const c = await srv.running.auth.registerClient({ kind: 'confidential', redirect_uris: [REDIRECT], allowed_scopes: 'launch/patient patient/*.rs', client_name: 'EHR app' });
    const { verifier, challenge } = pkce();
    const r = await authorize({
      issuer, email: 'alice@example.org', password: PASSWORD,
      params: { response_type: 'code', client_id: c.client_id as string, redirect_uri: REDIRECT, scope: 'launch/patient patient/*.rs', state: 's', aud: srv.base, code_challenge: challenge, code_challenge_method: 'S256' },
    });
    const form = { grant_type: 'authorization_code', code: r.code!, redirect_uri: REDIRECT, code_verifier: verifier };
    const anonymous = await tokenRequest(`${issuer}/token`, { ...form, client_id: c.client_id as string });
    expect(anonymous.body.error).toBe('invalid_client');
    const basic = Buffer.from(`${encodeURIComponent(c.client_id as string)}:${encodeURIComponent(c.client_secret as string)}`).toString('base64');
    const res = await fetch(`${issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}` }, body: new URLSearchParams(form) });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { patient: string }).patient).toBe(alice.fhirUser.split('/')[1]);
  });

  it('scripts/register-client onboards a backend client that can then get tokens', async () => {
    const { spawnSync } = await import('node:child_process');
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { generateKeyPairSync } = await import('node:crypto');
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const dir = mkdtempSync('/tmp/jwks-');
    writeFileSync(`${dir}/jwks.json`, JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'lab-1', alg: 'ES384', use: 'sig' }] }));
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/register-client.ts', '--kind', 'backend', '--scopes', 'system/Observation.cruds', '--jwks', `${dir}/jwks.json`, '--name', 'Lab'], {
      cwd: new URL('..', import.meta.url).pathname,
      env: { ...process.env, MONGODB_DB: srv.running.mongo.db.databaseName, LOG_LEVEL: 'silent', JOBS_ENABLED: 'false', REINDEX_WORKER: 'false' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(`${run.stdout}${run.stderr}`).toMatch(/client_id: mvy-/);
    const clientId = /client_id: (\S+)/.exec(run.stdout)![1]!;
    const t = await backendToken(srv.running, { clientId, privateKey, kid: 'lab-1', alg: 'ES384' }, 'system/Observation.rs');
    expect(t.scope).toBe('system/Observation.rs');
  }, 60_000);
});

describe('conditional writes stay within reach', () => {
  it('a patient’s conditional create or update never matches (or overwrites) another patient’s resource', async () => {
    const bobObs = await http('POST', `${srv.base}/Observation`, {
      body: { resourceType: 'Observation', status: 'final', identifier: [{ system: 'urn:lab', value: 'bob-1' }], code: { text: 'bob' }, subject: { reference: bob.fhirUser } },
    });
    expect(bobObs.status).toBe(201);
    const t = await launch('alice@example.org', 'launch/patient patient/*.cruds');
    const token = t.body.access_token;
    const mine = { resourceType: 'Observation', status: 'final', identifier: [{ system: 'urn:lab', value: 'bob-1' }], code: { text: 'alice' }, subject: { reference: alice.fhirUser } };
    const created = await http('POST', `${srv.base}/Observation`, { token, body: mine, headers: { 'If-None-Exist': 'identifier=urn:lab|bob-1' } });
    expect(created.status).toBe(201);
    expect(created.body.id).not.toBe(bobObs.body.id);
    const updated = await http('PUT', `${srv.base}/Observation?identifier=urn:lab|bob-1&subject=${bob.fhirUser}`, { token, body: mine });
    expect(updated.status).toBe(201);
    const bobs = (await http('GET', `${srv.base}/Observation/${bobObs.body.id}`)).body;
    expect(bobs.subject.reference).toBe(bob.fhirUser);
    expect(bobs.meta.versionId).toBe('1');
  }, 30_000);
});
