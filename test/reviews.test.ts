/**
 * Appointment/$review over HTTP with real patient tokens: only the appointment's own patient, only when
 * fulfilled, only once (also under concurrent duplicates); the practitioner's rating and review count stay
 * right under concurrent reviews; and Practitioner?rating=ge4 finds the well-rated.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';
import { tokenRequest } from './support/auth.js';
import { authorize, pkce } from './support/browser.js';

const RATING = 'http://medivoy.example/fhir/StructureDefinition/practitioner-rating';
const COUNT = 'http://medivoy.example/fhir/StructureDefinition/practitioner-review-count';
const REDIRECT = 'http://app.example/callback';
const PASSWORD = 'Blue-Harbor-72!';

let srv: TestServer;
let appId: string;

interface Person {
  fhirUser: string;
  token: string;
}

beforeAll(async () => {
  srv = await startTestServer();
  const app = await srv.running.auth.registerClient({ kind: 'public', redirect_uris: [REDIRECT], allowed_scopes: 'openid fhirUser user/*.cruds', client_name: 'Reviews test app' });
  appId = app.client_id as string;
}, 60_000);
afterAll(async () => {
  await srv?.close();
});

/** Signs `email` in through the authorization code flow and returns their access token. */
async function signIn(email: string): Promise<string> {
  const { verifier, challenge } = pkce();
  const issuer = srv.running.auth.issuer;
  const r = await authorize({
    issuer, email, password: PASSWORD,
    params: { response_type: 'code', client_id: appId, redirect_uri: REDIRECT, scope: 'openid fhirUser user/*.cruds', state: 's', aud: srv.base, code_challenge: challenge, code_challenge_method: 'S256' },
  });
  const t = await tokenRequest(`${issuer}/token`, { grant_type: 'authorization_code', code: r.code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: appId });
  expect(t.status).toBe(200);
  return t.body.access_token;
}

let n = 0;
async function patient(): Promise<Person> {
  const email = `p${++n}.${Date.now()}@example.org`;
  const reg = await http('POST', `${srv.url}/auth/register`, { body: { email, password: PASSWORD, givenName: 'Pat', familyName: `Ient${'abcdefghijklmnopqrstuvwxyz'[n % 26]}` }, headers: { 'content-type': 'application/json' }, token: false });
  expect(reg.status).toBe(201);
  return { fhirUser: reg.body.fhirUser, token: await signIn(email) };
}

async function practitioner(family: string): Promise<string> {
  const res = await http('POST', `${srv.base}/Practitioner`, { body: { resourceType: 'Practitioner', active: true, name: [{ family, given: ['Dana'] }] } });
  expect(res.status).toBe(201);
  return `Practitioner/${res.body.id}`;
}

/** An appointment written directly with the system token (booking is another module's work). */
async function appointment(patientRef: string, practitionerRef: string, status = 'fulfilled'): Promise<string> {
  const res = await http('POST', `${srv.base}/Appointment`, {
    body: { resourceType: 'Appointment', status, start: '2024-03-01T09:00:00Z', end: '2024-03-01T09:30:00Z', participant: [{ actor: { reference: patientRef }, status: 'accepted' }, { actor: { reference: practitionerRef }, status: 'accepted' }] },
  });
  expect(res.status).toBe(201);
  return res.body.id;
}

const review = (id: string, token: string, rating: unknown, comment?: string) =>
  http('POST', `${srv.base}/Appointment/${id}/$review`, {
    token,
    body: { resourceType: 'Parameters', parameter: [{ name: 'rating', valueInteger: rating }, ...(comment ? [{ name: 'comment', valueString: comment }] : [])] },
  });

async function ratingOf(ref: string): Promise<{ average?: number; count?: number }> {
  const p = (await http('GET', `${srv.base}/${ref}`)).body;
  return { average: p.extension?.find((e: any) => e.url === RATING)?.valueDecimal, count: p.extension?.find((e: any) => e.url === COUNT)?.valueInteger };
}

describe('Appointment/$review', () => {
  it('lets the patient of a fulfilled appointment review it once, stored as a QuestionnaireResponse', async () => {
    const alice = await patient();
    const doc = await practitioner('Review');
    const id = await appointment(alice.fhirUser, doc);
    const res = await review(id, alice.token, 4, 'Kind and <b>thorough</b>');
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toMatch(/QuestionnaireResponse\/[^/]+\/_history\/1$/);
    const qr = res.body;
    expect(qr).toMatchObject({
      resourceType: 'QuestionnaireResponse', status: 'completed', questionnaire: 'http://medivoy.example/fhir/Questionnaire/practitioner-review',
      subject: { reference: doc }, author: { reference: alice.fhirUser },
      extension: [{ url: 'http://medivoy.example/fhir/StructureDefinition/reviewed-appointment', valueReference: { reference: `Appointment/${id}` } }],
    });
    expect(qr.item).toEqual([{ linkId: 'rating', answer: [{ valueInteger: 4 }] }, { linkId: 'comment', answer: [{ valueString: 'Kind and <b>thorough</b>' }] }]);
    expect(await ratingOf(doc)).toEqual({ average: 4, count: 1 });
    // The product Questionnaire is on the server.
    expect((await http('GET', `${srv.base}/Questionnaire/practitioner-review`)).body.item.map((i: any) => i.type)).toEqual(['integer', 'string']);

    const again = await review(id, alice.token, 1);
    expect(again.status).toBe(409);
    expect(again.body.resourceType).toBe('OperationOutcome');
    expect(await ratingOf(doc)).toEqual({ average: 4, count: 1 });
  });

  it('refuses other patients, practitioners-to-be, unfinished appointments and bad ratings', async () => {
    const [alice, bob] = [await patient(), await patient()];
    const doc = await practitioner('Rules');
    const done = await appointment(alice.fhirUser, doc);
    const booked = await appointment(alice.fhirUser, doc, 'booked');
    expect((await review(done, bob.token, 5)).status).toBe(404); // bob may not even see it
    const sys = await http('POST', `${srv.base}/Appointment/${done}/$review`, { body: { resourceType: 'Parameters', parameter: [{ name: 'rating', valueInteger: 5 }] } });
    expect(sys.status).toBe(403); // a backend client is not the patient
    expect((await review(booked, alice.token, 5)).status).toBe(409);
    for (const bad of [0, 6, 3.5, '5']) expect((await review(done, alice.token, bad)).status).toBe(400);
    expect((await http('POST', `${srv.base}/Patient/${alice.fhirUser.split('/')[1]}/$review`, { token: alice.token, body: { resourceType: 'Parameters' } })).status).toBe(404);
    expect(await ratingOf(doc)).toEqual({ average: undefined, count: undefined });
  });

  it('lets exactly one of concurrent duplicate reviews through', async () => {
    const carol = await patient();
    const doc = await practitioner('Dup');
    const id = await appointment(carol.fhirUser, doc);
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => review(id, carol.token, 1 + (i % 5))));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    const stored = await http('GET', `${srv.base}/QuestionnaireResponse?subject=${doc}`);
    expect(stored.body.entry).toHaveLength(1);
    expect((await ratingOf(doc)).count).toBe(1);
  });

  it('keeps count and average right under concurrent reviews, and Practitioner?rating=ge4 finds the well-rated', async () => {
    const dave = await patient();
    const good = await practitioner('Good');
    const fair = await practitioner('Fair');
    const ratings = [5, 4, 5, 3, 5, 4, 5, 5, 4, 5];
    const ids = await Promise.all(ratings.map(() => appointment(dave.fhirUser, good)));
    const results = await Promise.all(ids.map((id, i) => review(id, dave.token, ratings[i])));
    expect(results.map((r) => r.status)).toEqual(ratings.map(() => 201));
    const avg = Math.round((ratings.reduce((a, b) => a + b, 0) / ratings.length) * 100) / 100;
    expect(await ratingOf(good)).toEqual({ average: avg, count: ratings.length });

    const fairIds = await Promise.all([3, 2].map(() => appointment(dave.fhirUser, fair)));
    await Promise.all(fairIds.map((id, i) => review(id, dave.token, [3, 2][i])));
    expect(await ratingOf(fair)).toEqual({ average: 2.5, count: 2 });

    const found = await http('GET', `${srv.base}/Practitioner?rating=ge4`, { headers: { Prefer: 'handling=strict' } });
    expect(found.status).toBe(200);
    const refs = found.body.entry.filter((e: any) => e.search.mode === 'match').map((e: any) => `Practitioner/${e.resource.id}`);
    expect(refs).toContain(good);
    expect(refs).not.toContain(fair);
    const low = await http('GET', `${srv.base}/Practitioner?rating=lt3`);
    expect(low.body.entry.map((e: any) => `Practitioner/${e.resource.id}`)).toContain(fair);
  });
});
