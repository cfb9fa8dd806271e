/**
 * Practitioner onboarding, verification and availability over HTTP with real accounts and tokens: a practitioner
 * submits its profile (roles stay inactive and pending), administrators verify (403 for another hospital, e-mail
 * on a local SMTP server), licences are unique per issuer, and slots are generated across the Europe/Berlin DST
 * change of 2027-03-28, idempotently, never touching a busy slot, and found with plain FHIR search.
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { startSmtp, type Received } from './support/smtp.js';
import { http, startTestServer, type TestServer } from './support/server.js';
import { tokenRequest } from './support/auth.js';
import { authorize, pkce } from './support/browser.js';

jest.setTimeout(120_000);

const PASSWORD = 'Blue-Harbor-72!';
const REDIRECT = 'http://app.example/callback';
const EXT = 'http://medivoy.example/fhir/StructureDefinition';
const TZ = 'http://hl7.org/fhir/StructureDefinition/timezone';
const LICENCE_ISSUER = 'https://licences.example/de/aerztekammer-berlin';
const licence = (value: string) => ({ system: LICENCE_ISSUER, value, type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MD' }] } });

let smtp: Awaited<ReturnType<typeof startSmtp>> | undefined;
let srv: TestServer;
let appId: string;
const tokens: Record<string, string> = {};
const people: Record<string, string> = {}; // fhirUser per account
let orgA: string, orgB: string, berlin: string;
let roleId: string;

async function launch(email: string): Promise<string> {
  const { verifier, challenge } = pkce();
  const issuer = srv.running.auth.issuer;
  const r = await authorize({ issuer, email, password: PASSWORD, params: { response_type: 'code', client_id: appId, redirect_uri: REDIRECT, scope: 'openid fhirUser user/*.cruds', state: 's', aud: srv.base, code_challenge: challenge, code_challenge_method: 'S256' } });
  expect(r.error).toBeUndefined();
  const t = await tokenRequest(`${issuer}/token`, { grant_type: 'authorization_code', code: r.code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: appId });
  expect(t.status).toBe(200);
  return t.body.access_token;
}

async function mailTo(address: string, subject: RegExp): Promise<Received> {
  for (const until = Date.now() + 10_000; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
    const m = smtp!.inbox.find((x) => x.to.includes(address) && subject.test(x.subject));
    if (m) return m;
  }
  throw new Error(`no e-mail to ${address} matching ${subject}`);
}

const create = async (resource: Record<string, unknown>) => {
  const res = await http('POST', `${srv.base}/${resource.resourceType}`, { body: resource });
  expect(res.status).toBe(201);
  return `${resource.resourceType}/${res.body.id}`;
};

const op = (path: string, token: string, parameter: Record<string, unknown>[] = []) =>
  http('POST', `${srv.base}/${path}`, { token, body: { resourceType: 'Parameters', parameter } });

/** Free slots of the role in a window, by plain FHIR search (chained on the Schedule's actor). */
async function freeSlots(token: string, from: string, to = '2027-04-03T00:00:00Z'): Promise<any[]> {
  const res = await http('GET', `${srv.base}/Slot?schedule.actor=PractitionerRole/${roleId}&start=ge${from}&start=lt${to}&status=free&_count=200`, { token });
  expect(res.status).toBe(200);
  return (res.body.entry ?? []).map((e: any) => e.resource).sort((a: any, b: any) => a.start.localeCompare(b.start));
}

const window = [{ name: 'start', valueInstant: '2027-03-22T00:00:00Z' }, { name: 'end', valueInstant: '2027-04-03T00:00:00Z' }];
const weekdays = ['mon', 'tue', 'wed', 'thu', 'fri'];

beforeAll(async () => {
  smtp = await startSmtp();
  srv = await startTestServer({ SMTP_URL: smtp.url });
  orgA = await create({ resourceType: 'Organization', name: 'Spree Klinikum', extension: [{ url: TZ, valueCode: 'Europe/Berlin' }] });
  orgB = await create({ resourceType: 'Organization', name: 'Elbe Hospital', extension: [{ url: TZ, valueCode: 'Europe/Berlin' }] });
  berlin = await create({ resourceType: 'Location', name: 'Spree Klinikum, Mitte', managingOrganization: { reference: orgA }, extension: [{ url: TZ, valueCode: 'Europe/Berlin' }] });
  const accounts = srv.running.accounts;
  for (const [key, kind, org] of [['dr', 'practitioner'], ['dr2', 'practitioner'], ['adminA', 'hospital-admin', orgA], ['adminB', 'hospital-admin', orgB]] as const) {
    const a = await accounts.createAccount({ kind, email: `${key.toLowerCase()}@example.org`, password: PASSWORD, ...(kind === 'practitioner' ? { person: { givenName: key === 'dr' ? 'Lise' : 'Otto', familyName: 'Meitner' } } : {}), ...(org ? { organization: org } : {}) });
    people[key] = a.fhirUser ?? '';
  }
  const app = await srv.running.auth.registerClient({ kind: 'public', redirect_uris: [REDIRECT], allowed_scopes: 'openid fhirUser user/*.cruds', client_name: 'Medivoy app' });
  appId = app.client_id as string;
  for (const key of ['dr', 'dr2', 'adminA', 'adminB']) tokens[key] = await launch(`${key.toLowerCase()}@example.org`);
  await srv.running.accounts.idle();
  smtp.inbox.length = 0; // welcome e-mails
});
afterAll(async () => {
  await srv?.close();
  await smtp?.close();
});

describe('onboarding and verification', () => {
  it('a practitioner submits its profile; its role is forced inactive and pending', async () => {
    const me = (await http('GET', `${srv.base}/${people.dr}`, { token: tokens.dr })).body;
    const profile = { ...me, identifier: [licence('BE-4711')], qualification: [{ code: { text: 'Fachärztin für Innere Medizin' } }] };
    expect((await http('PUT', `${srv.base}/${people.dr}`, { token: tokens.dr, body: profile })).status).toBe(200);
    const res = await http('POST', `${srv.base}/PractitionerRole`, {
      token: tokens.dr,
      body: {
        resourceType: 'PractitionerRole', active: true, practitioner: { reference: people.dr }, organization: { reference: orgA }, location: [{ reference: berlin }],
        specialty: [{ coding: [{ system: 'http://snomed.info/sct', code: '419192003', display: 'Internal medicine' }] }],
        availableTime: [{ daysOfWeek: weekdays, availableStartTime: '09:00:00', availableEndTime: '12:00:00' }, { daysOfWeek: ['sun'], availableStartTime: '01:00:00', availableEndTime: '04:00:00' }],
        extension: [
          { url: `${EXT}/consultation-fee`, valueMoney: { value: 80, currency: 'EUR' } },
          { url: `${EXT}/slot-length`, valueDuration: { value: 30, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' } },
          { url: `${EXT}/verification-status`, valueCode: 'verified' }, // not theirs to set
        ],
      },
    });
    expect(res.status).toBe(201);
    roleId = res.body.id;
    expect(res.body.active).toBe(false);
    expect(res.body.extension.filter((e: any) => e.url === `${EXT}/verification-status`)).toEqual([{ url: `${EXT}/verification-status`, valueCode: 'pending' }]);
    // Nor can it be activated by an update or a patch.
    const put = await http('PUT', `${srv.base}/PractitionerRole/${roleId}`, { token: tokens.dr, body: { ...res.body, active: true } });
    expect(put.body.active).toBe(false);
    const patch = await http('PATCH', `${srv.base}/PractitionerRole/${roleId}`, { token: tokens.dr, raw: JSON.stringify([{ op: 'replace', path: '/active', value: true }]), headers: { 'content-type': 'application/json-patch+json' } });
    expect(patch.status).toBe(200);
    expect(patch.body.active).toBe(false);
  });

  it('refuses a licence already registered with the same issuer, also under concurrent writes', async () => {
    const other = (await http('GET', `${srv.base}/${people.dr2}`, { token: tokens.dr2 })).body;
    const dup = await http('PUT', `${srv.base}/${people.dr2}`, { token: tokens.dr2, body: { ...other, identifier: [licence('BE-4711')] } });
    expect(dup.status).toBe(409);
    // The same number from another issuer is another licence.
    const elsewhere = await http('PUT', `${srv.base}/${people.dr2}`, { token: tokens.dr2, body: { ...other, identifier: [{ ...licence('BE-4711'), system: 'https://licences.example/de/aerztekammer-hamburg' }] } });
    expect(elsewhere.status).toBe(200);
    const racers = await Promise.all(Array.from({ length: 6 }, (_, i) => http('POST', `${srv.base}/Practitioner`, { body: { resourceType: 'Practitioner', name: [{ family: `Racer${i}` }], identifier: [licence('BE-9999')] } })));
    expect(racers.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
  });

  it('only an administrator of the role’s organization verifies; the practitioner gets an e-mail', async () => {
    expect((await op(`PractitionerRole/${roleId}/$verify`, tokens.adminB, [{ name: 'decision', valueCode: 'approve' }])).status).toBe(403);
    expect((await op(`PractitionerRole/${roleId}/$verify`, tokens.dr, [{ name: 'decision', valueCode: 'approve' }])).status).toBe(403);
    const ok = await op(`PractitionerRole/${roleId}/$verify`, tokens.adminA, [{ name: 'decision', valueCode: 'approve' }]);
    expect(ok.status).toBe(200);
    expect(ok.body.active).toBe(true);
    expect(ok.body.extension).toContainEqual({ url: `${EXT}/verification-status`, valueCode: 'verified' });
    const mail = await mailTo('dr@example.org', /approved/);
    expect(mail.body).toMatch(/Spree Klinikum/);
    expect((await op(`PractitionerRole/${roleId}/$verify`, tokens.adminA, [{ name: 'decision', valueCode: 'approve' }])).status).toBe(409);
  });

  it('a rejection keeps the role inactive with the reason, and it gets no slots', async () => {
    const role = await http('POST', `${srv.base}/PractitionerRole`, { token: tokens.dr, body: { resourceType: 'PractitionerRole', practitioner: { reference: people.dr }, organization: { reference: orgB }, availableTime: [{ availableStartTime: '09:00:00', availableEndTime: '17:00:00' }] } });
    expect(role.status).toBe(201);
    const no = await op(`PractitionerRole/${role.body.id}/$verify`, tokens.adminB, [{ name: 'decision', valueCode: 'reject' }, { name: 'reason', valueString: 'Licence not registered in Hamburg' }]);
    expect(no.status).toBe(200);
    expect(no.body.active).toBe(false);
    expect(no.body.extension).toEqual(expect.arrayContaining([{ url: `${EXT}/verification-status`, valueCode: 'rejected' }, { url: `${EXT}/verification-reason`, valueString: 'Licence not registered in Hamburg' }]));
    expect((await mailTo('dr@example.org', /not approved/)).body).toMatch(/Licence not registered in Hamburg/);
    const gen = await op(`PractitionerRole/${role.body.id}/$generate-slots`, tokens.dr, window);
    expect(gen.status).toBe(200);
    expect(gen.body.parameter.find((p: any) => p.name === 'created').valueInteger).toBe(0);
  });
});

describe('slot generation', () => {
  it('generates slots across the spring-forward change with exact UTC instants', async () => {
    const res = await op(`PractitionerRole/${roleId}/$generate-slots`, tokens.dr, window);
    expect(res.status).toBe(200);
    expect(res.body.parameter.find((p: any) => p.name === 'created').valueInteger).toBe(64);
    const slots = await freeSlots(tokens.dr, '2027-03-22T00:00:00Z');
    const starts = slots.map((s) => s.start);
    expect(starts).toHaveLength(64);
    // Friday before the change: 09:00 CET = 08:00Z; Monday after: 09:00 CEST = 07:00Z.
    expect(starts.filter((s) => s.startsWith('2027-03-26'))).toEqual(['08:00', '08:30', '09:00', '09:30', '10:00', '10:30'].map((t) => `2027-03-26T${t}:00Z`));
    expect(starts.filter((s) => s.startsWith('2027-03-29'))).toEqual(['07:00', '07:30', '08:00', '08:30', '09:00', '09:30'].map((t) => `2027-03-29T${t}:00Z`));
    // The night of the change: 01:00–04:00 local is two real hours (02:00–03:00 does not exist).
    expect(starts.filter((s) => s.startsWith('2027-03-28'))).toEqual(['00:00', '00:30', '01:00', '01:30'].map((t) => `2027-03-28T${t}:00Z`));
    expect(slots[0].end).toBe('2027-03-22T08:30:00Z');
  });

  it('is idempotent: a second run creates nothing and leaves the same slots', async () => {
    const before = (await freeSlots(tokens.dr, '2027-03-22T00:00:00Z')).map((s) => `${s.id}@${s.meta.versionId}`);
    const again = await op(`PractitionerRole/${roleId}/$generate-slots`, tokens.adminA, window);
    expect(again.status).toBe(200);
    expect(Object.fromEntries(again.body.parameter.filter((p: any) => p.valueInteger !== undefined).map((p: any) => [p.name, p.valueInteger]))).toEqual({ created: 0, removed: 0, unchanged: 64 });
    expect((await freeSlots(tokens.dr, '2027-03-22T00:00:00Z')).map((s) => `${s.id}@${s.meta.versionId}`)).toEqual(before);
  });

  it('changed availability removes free slots that no longer fit and never touches a busy one', async () => {
    const [busy] = (await freeSlots(tokens.dr, '2027-03-30T07:00:00Z')).filter((s) => s.start === '2027-03-30T07:00:00Z');
    const booked = await http('PUT', `${srv.base}/Slot/${busy.id}`, { body: { ...busy, status: 'busy' } });
    expect(booked.status).toBe(200);
    const role = (await http('GET', `${srv.base}/PractitionerRole/${roleId}`, { token: tokens.dr })).body;
    const changed = await http('PUT', `${srv.base}/PractitionerRole/${roleId}`, { token: tokens.dr, body: { ...role, availableTime: [{ daysOfWeek: weekdays, availableStartTime: '10:00:00', availableEndTime: '12:00:00' }] } });
    expect(changed.status).toBe(200);
    expect(changed.body.active).toBe(true); // availability is the practitioner's to change: still verified
    const run = await op(`PractitionerRole/${roleId}/$generate-slots`, tokens.dr, window);
    expect(Object.fromEntries(run.body.parameter.filter((p: any) => p.valueInteger !== undefined).map((p: any) => [p.name, p.valueInteger]))).toEqual({ created: 0, removed: 23, unchanged: 40 });
    const after = await http('GET', `${srv.base}/Slot/${busy.id}`);
    expect(after.body.status).toBe('busy');
    expect(after.body.meta.versionId).toBe(booked.body.meta.versionId);
    const starts = (await freeSlots(tokens.dr, '2027-03-22T00:00:00Z')).map((s) => s.start);
    expect(starts).toHaveLength(40);
    expect(starts.filter((s) => s.startsWith('2027-03-30'))).toEqual(['08:00', '08:30', '09:00', '09:30'].map((t) => `2027-03-30T${t}:00Z`));
  });

  it('patients find availability with plain FHIR search', async () => {
    await http('POST', `${srv.url}/auth/register`, { body: { email: 'pat@example.org', password: PASSWORD, givenName: 'Pat', familyName: 'Ient' }, headers: { 'content-type': 'application/json' }, token: false });
    const patient = await launch('pat@example.org');
    const slots = await freeSlots(patient, '2027-03-29T00:00:00Z');
    expect(slots.length).toBe(20); // 10:00–12:00 on five days (the busy 09:00 slot is outside the new hours)
    expect(slots.every((s) => s.status === 'free' && s.start >= '2027-03-29')).toBe(true);
    const bySpecialty = await http('GET', `${srv.base}/Slot?specialty=http://snomed.info/sct|419192003&status=free&start=ge2027-03-29T00:00:00Z&_count=200`, { token: patient });
    expect(bySpecialty.body.entry).toHaveLength(20);
  });
});
