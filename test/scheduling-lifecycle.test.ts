/**
 * The appointment lifecycle as one table: every role × action × starting status over HTTP with real accounts and
 * tokens, against the guide's transition table written out here (not imported from the code under test). Also the
 * notices the lifecycle sends: the booking confirmation and cancellation e-mails reach a local SMTP server with
 * the time in the practice's own zone, and rescheduling moves the pending reminders.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { http, startTestServer, type TestServer } from './support/server.js';
import { userToken } from './support/browser.js';
import { startSmtp } from './support/smtp.js';
import { REMINDER_JOB } from '../src/notifications/reminders.js';
import { waitFor } from './support/wait.js';

const PASSWORD = 'Blue-Harbor-72!';
const TZ = 'http://hl7.org/fhir/StructureDefinition/timezone';
let srv: TestServer;
let smtp: Awaited<ReturnType<typeof startSmtp>>;
let alice: string;
let doc: string;
let otherDoc: string;
const tokens: Record<string, string | undefined> = {};

const params = (p: Record<string, string>) => ({ resourceType: 'Parameters', parameter: Object.entries(p).map(([name, v]) => ({ name, valueString: v })) });
const op = (path: string, p: Record<string, string>, token?: string) => http('POST', `${srv.base}/${path}`, { body: params(p), ...(token ? { token } : {}) });

beforeAll(async () => {
  smtp = await startSmtp();
  srv = await startTestServer({ SMTP_URL: smtp.url, CANCELLATION_CUTOFF_MINUTES: '60', REMINDER_OFFSETS: '24h,2h', JOBS_POLL_MS: '200' });
  const accounts = srv.running.accounts;
  const reg = async (given: string, email: string) =>
    (await http('POST', `${srv.url}/auth/register`, { body: { email, password: PASSWORD, givenName: given, familyName: 'Matrix' }, headers: { 'content-type': 'application/json' }, token: false })).body.fhirUser as string;
  alice = await reg('Alice', 'alice@matrix.example');
  await reg('Bob', 'bob@matrix.example');
  doc = (await accounts.createAccount({ kind: 'practitioner', email: 'doc@matrix.example', password: PASSWORD, person: { givenName: 'Greta', familyName: 'Own' } })).fhirUser!;
  otherDoc = (await accounts.createAccount({ kind: 'practitioner', email: 'other@matrix.example', password: PASSWORD, person: { givenName: 'Otto', familyName: 'Else' } })).fhirUser!;
  const far = new Date(Date.now() + 20 * 86400_000).toISOString();
  const farEnd = new Date(Date.now() + 20 * 86400_000 + 1800_000).toISOString();
  const day = (d: number, h: number) => new Date(Math.floor(Date.now() / 3600_000) * 3600_000 + d * 86400_000 + h * 3600_000).toISOString();
  const entry = [
    // org1 says its zone; its Location does not, so notices fall back to the managing organization's zone.
    { resource: { resourceType: 'Organization', id: 'org1', name: 'North Clinic', extension: [{ url: TZ, valueCode: 'Asia/Tokyo' }] }, request: { method: 'PUT', url: 'Organization/org1' } },
    { resource: { resourceType: 'Organization', id: 'org2', name: 'South Clinic' }, request: { method: 'PUT', url: 'Organization/org2' } },
    { resource: { resourceType: 'Location', id: 'loc1', name: 'Room 1', managingOrganization: { reference: 'Organization/org1' } }, request: { method: 'PUT', url: 'Location/loc1' } },
    { resource: { resourceType: 'PractitionerRole', id: 'role1', active: true, practitioner: { reference: doc }, organization: { reference: 'Organization/org1' } }, request: { method: 'PUT', url: 'PractitionerRole/role1' } },
    { resource: { resourceType: 'PractitionerRole', id: 'role2', active: true, practitioner: { reference: otherDoc }, organization: { reference: 'Organization/org2' } }, request: { method: 'PUT', url: 'PractitionerRole/role2' } },
    { resource: { resourceType: 'Schedule', id: 'sch1', actor: [{ reference: 'PractitionerRole/role1' }, { reference: 'Location/loc1' }] }, request: { method: 'PUT', url: 'Schedule/sch1' } },
    ...[0, 1, 2].map((i) => ({
      resource: { resourceType: 'Slot', id: `m${i}`, schedule: { reference: 'Schedule/sch1' }, status: 'free', start: day(3 + i, 0), end: day(3 + i, 1) },
      request: { method: 'PUT', url: `Slot/m${i}` },
    })),
    // Alice is also booked at the other clinic: its practitioner and administrator can see her, yet must not act
    // on her appointments at org1.
    {
      resource: {
        resourceType: 'Appointment', id: 'link', status: 'booked', start: far, end: farEnd,
        participant: [{ actor: { reference: alice }, status: 'accepted' }, { actor: { reference: 'PractitionerRole/role2' }, status: 'accepted' }, { actor: { reference: otherDoc }, status: 'accepted' }],
      },
      request: { method: 'PUT', url: 'Appointment/link' },
    },
  ];
  expect((await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'transaction', entry } })).status).toBe(200);
  await accounts.createAccount({ kind: 'hospital-admin', email: 'admin1@matrix.example', password: PASSWORD, organization: 'Organization/org1' });
  await accounts.createAccount({ kind: 'hospital-admin', email: 'admin2@matrix.example', password: PASSWORD, organization: 'Organization/org2' });
  await accounts.createAccount({ kind: 'system-admin', email: 'root@matrix.example', password: PASSWORD });
  const user = async (email: string, scope = 'user/*.cruds') => (await userToken(srv.running, email, PASSWORD, scope)).access_token;
  tokens['own patient'] = await user('alice@matrix.example', 'launch/patient patient/*.cruds');
  tokens['other patient'] = await user('bob@matrix.example', 'launch/patient patient/*.cruds');
  tokens['own practitioner'] = await user('doc@matrix.example');
  tokens['other practitioner'] = await user('other@matrix.example');
  tokens['admin of the clinic'] = await user('admin1@matrix.example');
  tokens['admin of another clinic'] = await user('admin2@matrix.example');
  tokens['system admin'] = await user('root@matrix.example');
  tokens['backend service'] = undefined; // the tests' default system/*.* client token
}, 120_000);
afterAll(async () => {
  await srv?.close();
  await smtp?.close();
});

// ------------------------------------------------------------------------------------------------------------
// The guide's table (scheduled → pending, confirmed → booked, in_progress → arrived, completed → fulfilled).
type Status = 'proposed' | 'pending' | 'booked' | 'arrived' | 'fulfilled' | 'cancelled' | 'noshow';
type Role = 'patient' | 'practitioner' | 'admin';
const STATUSES: Status[] = ['proposed', 'pending', 'booked', 'arrived', 'fulfilled', 'cancelled', 'noshow'];
const TABLE: Record<string, { from: Status[]; to: Status; by: Role[] }> = {
  confirm: { from: ['pending'], to: 'booked', by: ['practitioner', 'admin'] },
  arrive: { from: ['booked'], to: 'arrived', by: ['practitioner', 'admin'] },
  complete: { from: ['arrived'], to: 'fulfilled', by: ['practitioner', 'admin'] },
  cancel: { from: ['proposed', 'pending', 'booked', 'arrived'], to: 'cancelled', by: ['patient', 'practitioner', 'admin'] },
  noshow: { from: ['pending', 'booked'], to: 'noshow', by: ['practitioner', 'admin'] },
};
/** Each caller: whether they can see the appointment at all, and the role they act in on it (none: refused). */
const ACTORS: Record<string, { sees: boolean; as?: Role }> = {
  'own patient': { sees: true, as: 'patient' },
  'other patient': { sees: false },
  'own practitioner': { sees: true, as: 'practitioner' },
  'other practitioner': { sees: true },
  'admin of the clinic': { sees: true, as: 'admin' },
  'admin of another clinic': { sees: true },
  'system admin': { sees: true, as: 'admin' },
  'backend service': { sees: true, as: 'admin' },
};

let seq = 0;
/** An appointment of Alice with the own practitioner at org1, written directly in the given status. */
async function appointmentIn(status: Status): Promise<string> {
  const start = new Date(Date.now() + (10 + seq++) * 86400_000);
  const res = await http('POST', `${srv.base}/Appointment`, {
    body: {
      resourceType: 'Appointment', status, start: start.toISOString(), end: new Date(start.getTime() + 1800_000).toISOString(),
      participant: [
        { actor: { reference: alice }, status: 'accepted' },
        { actor: { reference: 'PractitionerRole/role1' }, status: 'needs-action' },
        { actor: { reference: doc }, status: 'needs-action' },
        { actor: { reference: 'Location/loc1' }, status: 'accepted' },
      ],
    },
  });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

describe('role × transition matrix', () => {
  it('allows exactly what the guide’s table allows, to exactly the roles it names; refusals change nothing', async () => {
    const shared = Object.fromEntries(await Promise.all(STATUSES.map(async (s) => [s, await appointmentIn(s)] as const))) as Record<Status, string>;
    const mismatches: string[] = [];
    let allowed = 0;
    for (const [action, rule] of Object.entries(TABLE)) {
      for (const from of STATUSES) {
        for (const [who, actor] of Object.entries(ACTORS)) {
          const permitted = actor.as !== undefined && rule.by.includes(actor.as);
          const expected = !actor.sees ? 404 : !permitted ? 403 : !rule.from.includes(from) ? 409 : 200;
          const id = expected === 200 ? await appointmentIn(from) : shared[from];
          const res = await op(`Appointment/${id}/$${action}`, { reason: `matrix ${who}` }, tokens[who]);
          const got = res.status === 200 ? `200 ${res.body.status}` : `${res.status} ${res.body?.resourceType}`;
          const want = expected === 200 ? `200 ${rule.to}` : `${expected} OperationOutcome`;
          if (got !== want) mismatches.push(`${who} ${action} from ${from}: want ${want}, got ${got} ${res.body?.issue?.[0]?.details?.text ?? ''}`);
          if (expected === 200) allowed++;
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(allowed).toBe(4 /* patient: cancel */ + 3 * 9 /* each admin */ + 9 /* own practitioner */);
    // Refusals wrote nothing: every shared appointment is still at its first version and status.
    for (const s of STATUSES) {
      const r = await http('GET', `${srv.base}/Appointment/${shared[s]}`);
      expect([r.body.meta.versionId, r.body.status]).toEqual(['1', s]);
    }
  }, 300_000);

  it('cancelling an arrived appointment (the guide’s in_progress → cancelled) finishes its Encounter', async () => {
    const id = await appointmentIn('booked');
    expect((await op(`Appointment/${id}/$arrive`, {}, tokens['own practitioner'])).body.status).toBe('arrived');
    const c = await op(`Appointment/${id}/$cancel`, { reason: 'Patient left' }, tokens['own practitioner']);
    expect(c.body).toMatchObject({ status: 'cancelled', cancelationReason: { text: 'Patient left' } });
    const enc = (await http('GET', `${srv.base}/Encounter?appointment=Appointment/${id}`)).body.entry;
    expect(enc).toHaveLength(1);
    expect(enc[0].resource.status).toBe('finished');
    expect(enc[0].resource.period.end).toBeDefined();
  });

  it('an administrator of another clinic sees the patient but is told why they may not act', async () => {
    const id = await appointmentIn('pending');
    const res = await op(`Appointment/${id}/$confirm`, {}, tokens['admin of another clinic']);
    expect(res.status).toBe(403);
    expect(res.body.issue[0].details.text).toMatch(/own organization \(Organization\/org2\)/);
    expect((await http('GET', `${srv.base}/Appointment/${id}`, { token: tokens['admin of another clinic'] })).status).toBe(200);
  });
});

describe('bad input to the scheduling operations', () => {
  const post = (path: string, body: unknown, token?: string) => http('POST', `${srv.base}/${path}`, { body, ...(token ? { token } : {}) });
  it('answers 400 OperationOutcomes and writes nothing', async () => {
    const id = await appointmentIn('pending');
    const cases: [string, unknown][] = [
      [`Appointment/${id}/$confirm`, { resourceType: 'Patient' }], // not Parameters
      [`Appointment/${id}/$cancel`, { resourceType: 'Parameters', parameter: { name: 'reason', valueString: 'x' } }], // parameter not a list
      [`Appointment/${id}/$cancel`, { resourceType: 'Parameters', parameter: [{ name: 'reason', valueString: { $gt: '' } }] }], // wrong type
      ['Appointment/$book', { resourceType: 'Parameters', parameter: [{ name: 'slot', valueString: { $ne: null } }] }], // operator injection
      ['Appointment/$book', { resourceType: 'Parameters', parameter: [{ name: 'slot', valueString: 'Patient/m2' }] }], // not a Slot
      ['Appointment/$book', { resourceType: 'Parameters', parameter: [{ name: 'slot', valueString: 'Slot/m2' }, { name: 'patient', valueString: 'Patient/$where' }] }],
      [`Appointment/${id}/$reschedule`, { resourceType: 'Parameters', parameter: [{ name: 'slot', valueString: 'Slot/../m2' }] }],
      [`Appointment/${id}/$cancel`, { resourceType: 'Parameters', parameter: [{ name: 'reason', valueString: 'a', valueCode: 'b' }] }], // two values
      [`Appointment/${id}/$review`, { resourceType: 'Parameters', parameter: [{ name: 'rating', valueInteger: '5' }] }],
      ['PractitionerRole/role1/$verify', { resourceType: 'Parameters', parameter: 'approve' }],
      ['PractitionerRole/role1/$verify', { resourceType: 'Parameters', parameter: [{ name: 'decision', part: { name: 'x' } }] }],
      ['Patient/$validate', { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: 'Patient' }] }],
    ];
    for (const [path, body] of cases) {
      const res = await post(path, body);
      expect({ path, body, status: res.status, type: res.body?.resourceType }).toEqual({ path, body, status: 400, type: 'OperationOutcome' });
    }
    const find = await http('GET', `${srv.base}/Appointment/$find?start=${encodeURIComponent('{"$gt":""}')}`);
    expect([find.status, find.body.resourceType]).toEqual([400, 'OperationOutcome']);
    const current = await http('GET', `${srv.base}/Appointment/${id}`);
    expect([current.body.meta.versionId, current.body.status]).toEqual(['1', 'pending']);
    expect((await http('GET', `${srv.base}/Slot/m2`)).body.status).toBe('free');
  });
});

describe('notices along the lifecycle', () => {
  const inbox = (subject: RegExp) => smtp.inbox.filter((m) => m.to.includes('alice@matrix.example') && subject.test(m.subject));
  const until = <T>(what: string, get: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> => waitFor(what, get, timeoutMs);
  const pendingReminders = async (appointment: string) =>
    (await srv.running.mongo.db.collection('jobs').find({ name: REMINDER_JOB, 'data.appointment': appointment }).toArray()).map((j) => ({
      at: new Date(j.runAt).toISOString(),
      start: j.data.start as string,
    }));

  it('books, reschedules and cancels: confirmation and cancellation e-mails in the clinic’s zone, reminders moved then removed', async () => {
    const booked = await op('Appointment/$book', { slot: 'Slot/m0' }, tokens['own patient']);
    expect(booked.status).toBe(201);
    const ref = `Appointment/${booked.body.id}`;
    const start = booked.body.start as string;
    // The confirmation names the time as the clinic's clock shows it (org1: Asia/Tokyo, UTC+9, no DST).
    const tokyo = new Intl.DateTimeFormat('en-GB', { timeZone: 'Asia/Tokyo', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(start));
    const confirmation = await until('the booking confirmation', () => inbox(/is booked$/)[0]);
    expect(confirmation.subject).toContain('(Asia/Tokyo)');
    expect(confirmation.body).toContain(tokyo);
    expect(confirmation.body).toContain(booked.body.identifier[0].value);

    // Two reminders (24 h and 2 h before), then moved with the appointment.
    const before = await until('two reminders', async () => ((await pendingReminders(ref)).length === 2 ? pendingReminders(ref) : undefined));
    expect(before.map((r) => r.start)).toEqual([start, start].map((s) => new Date(s).toISOString()));
    const moved = await op(`${ref}/$reschedule`, { slot: 'Slot/m1' }, tokens['own patient']);
    expect(moved.status).toBe(200);
    const newStart = new Date(moved.body.start).toISOString();
    const after = await until('moved reminders', async () => {
      const r = await pendingReminders(ref);
      return r.length === 2 && r.every((x) => x.start === newStart) ? r : undefined;
    });
    expect(after.map((r) => Date.parse(newStart) - Date.parse(r.at)).sort((x, y) => x - y)).toEqual([2 * 3600_000, 24 * 3600_000]);

    const cancelled = await op(`${ref}/$cancel`, { reason: 'Travelling <abroad>' }, tokens['own patient']);
    expect(cancelled.body.status).toBe('cancelled');
    const notice = await until('the cancellation e-mail', () => inbox(/was cancelled$/)[0]);
    expect(notice.subject).toContain('(Asia/Tokyo)');
    expect(notice.body).toContain('Travelling &lt;abroad&gt;');
    await until('no pending reminders', async () => ((await pendingReminders(ref)).length === 0 ? true : undefined));
  });
});
