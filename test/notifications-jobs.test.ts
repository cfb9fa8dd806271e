/**
 * Reminders and notices as agenda jobs against the real database and a local SMTP server: reminders are
 * delivered at offsets shortened by configuration (REMINDER_OFFSETS in seconds, not mocked time), respect
 * the patient's channel preferences, are cancelled with cancelReminders and skipped for cancelled
 * appointments; with two server processes on one database each reminder job runs exactly once.
 */
import { randomBytes } from 'node:crypto';
import { startSmtp, type Received } from './support/smtp.js';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';
import { tokenRequest } from './support/auth.js';
import { authorize, pkce } from './support/browser.js';
import { markNoShows } from '../src/scheduling/mark-no-shows.js';
import { REMINDER_JOB } from '../src/notifications/reminders.js';
import { waitFor } from './support/wait.js';

const PASSWORD = 'Blue-Harbor-72!';
const REDIRECT = 'http://app.example/callback';
const ENV = { REMINDER_OFFSETS: '4s,2s', JOBS_POLL_MS: '200' };


let smtp: Awaited<ReturnType<typeof startSmtp>>;
let a: TestServer;
let b: TestServer;
let appId: string;
const dbName = `t_${randomBytes(6).toString('hex')}`;

beforeAll(async () => {
  smtp = await startSmtp();
  a = await startTestServer({ SMTP_URL: smtp.url, ...ENV }, { dbName, keepDb: true, single: true }); // two processes already
  b = await startTestServer({ SMTP_URL: smtp.url, ...ENV }, { dbName, single: true });
  appId = (await a.running.auth.registerClient({ kind: 'public', redirect_uris: [REDIRECT], allowed_scopes: 'openid fhirUser user/*.cruds', client_name: 'Notifications test' })).client_id as string;
}, 60_000);
afterAll(async () => {
  await a?.close();
  await b?.close();
  await smtp?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Reminder e-mails to an address (registration also sends a welcome e-mail). */
const mailsTo = (address: string) => smtp.inbox.filter((m) => m.to.includes(address) && m.subject.startsWith("Reminder"));
const until = (what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 20_000) => waitFor(what, ok, timeoutMs);

let n = 0;
async function patient(): Promise<{ email: string; ref: string }> {
  const email = `rem${++n}.${randomBytes(3).toString('hex')}@example.org`;
  const res = await http('POST', `${a.url}/auth/register`, { body: { email, password: PASSWORD, givenName: 'Rita', familyName: 'Minder' }, headers: { 'content-type': 'application/json' }, token: false });
  expect(res.status).toBe(201);
  return { email, ref: res.body.fhirUser };
}

async function signIn(email: string): Promise<string> {
  const { verifier, challenge } = pkce();
  const issuer = a.running.auth.issuer;
  const r = await authorize({ issuer, email, password: PASSWORD, params: { response_type: 'code', client_id: appId, redirect_uri: REDIRECT, scope: 'openid fhirUser user/*.cruds', state: 's', aud: a.base, code_challenge: challenge, code_challenge_method: 'S256' } });
  return (await tokenRequest(`${issuer}/token`, { grant_type: 'authorization_code', code: r.code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: appId })).body.access_token;
}

let doctor: string;
async function appointment(patientRef: string, startInMs: number, status = 'booked'): Promise<{ id: string; start: string }> {
  doctor ??= `Practitioner/${(await http('POST', `${a.base}/Practitioner`, { body: { resourceType: 'Practitioner', name: [{ family: "O'Brien <MD>", given: ['Kim'] }] } })).body.id}`;
  const start = new Date(Date.now() + startInMs);
  const res = await http('POST', `${a.base}/Appointment`, {
    body: { resourceType: 'Appointment', status, start: start.toISOString(), end: new Date(start.getTime() + 1_800_000).toISOString(), participant: [{ actor: { reference: patientRef }, status: 'accepted' }, { actor: { reference: doctor }, status: 'accepted' }] },
  });
  expect(res.status).toBe(201);
  return { id: res.body.id, start: res.body.start };
}

describe('reminders', () => {
  it('delivers one e-mail and one in-app Communication per offset, escaped, at the configured offsets', async () => {
    const p = await patient();
    const appt = await appointment(p.ref, 6_000);
    expect(await a.running.reminders.scheduleReminders(`Appointment/${appt.id}`, appt.start)).toBe(2);
    // Scheduling twice (a retried booking hook) does not double them: one job per appointment and offset.
    expect(await b.running.reminders.scheduleReminders(`Appointment/${appt.id}`, appt.start)).toBe(2);
    await until('two reminders', () => mailsTo(p.email).length >= 2);
    const at = Date.now();
    expect(at).toBeLessThan(new Date(appt.start).getTime()); // before the appointment, as reminders should be
    const mails = mailsTo(p.email);
    expect(mails.map((m) => m.subject).sort()).toEqual([`Reminder: appointment with Kim O'Brien <MD> in 2 seconds`, `Reminder: appointment with Kim O'Brien <MD> in 4 seconds`]);
    expect(mails[0]!.body).toContain('Kim O&#39;Brien &lt;MD&gt;');
    expect(mails[0]!.body).not.toMatch(/<p>[^<]*<MD>/);
    const inApp = async () => ((await http('GET', `${a.base}/Communication?recipient=${p.ref}`)).body.entry ?? []).map((e: any) => e.resource);
    await until('two in-app reminders', async () => (await inApp()).length >= 2); // sent right after each e-mail
    const comms = await inApp();
    expect(comms).toHaveLength(2);
    expect(comms[0]).toMatchObject({ status: 'completed', about: [{ reference: `Appointment/${appt.id}` }], recipient: [{ reference: p.ref }] });
    await sleep(1500);
    expect(mailsTo(p.email)).toHaveLength(2);
  });

  it('cancelReminders removes them, and a cancelled appointment gets none', async () => {
    const p = await patient();
    // Reminders at +4 s and +6 s: time enough to cancel before the first is due.
    const kept = await appointment(p.ref, 8_000);
    const dropped = await appointment(p.ref, 8_000);
    const cancelled = await appointment(p.ref, 8_000);
    for (const x of [kept, dropped, cancelled]) await a.running.reminders.scheduleReminders(`Appointment/${x.id}`, x.start);
    expect(await a.running.reminders.cancelReminders(`Appointment/${dropped.id}`)).toBe(2);
    const c = JSON.parse((await a.running.repo.read('Appointment', cancelled.id)).json!);
    await a.running.repo.update({ ...c, status: 'cancelled' });
    await until('the kept appointment\'s reminders', () => mailsTo(p.email).length >= 2);
    await sleep(3000); // past every reminder time
    expect(mailsTo(p.email)).toHaveLength(2);
    const about = (await http('GET', `${a.base}/Communication?recipient=${p.ref}`)).body.entry.map((e: any) => e.resource.about[0].reference);
    expect(about).toEqual([`Appointment/${kept.id}`, `Appointment/${kept.id}`]);
  });

  it('follows the patient\'s channel preferences (GET/PUT /auth/preferences) and says SMS has no provider', async () => {
    const p = await patient();
    const token = await signIn(p.email);
    expect((await http('GET', `${a.url}/auth/preferences`, { token: false })).status).toBe(401);
    expect((await http('GET', `${a.url}/auth/preferences`, { token })).body.channels).toEqual({ email: true, 'in-app': true, sms: false, push: false });
    expect((await http('PUT', `${a.url}/auth/preferences`, { token, body: { email: 'no' }, headers: { 'content-type': 'application/json' } })).status).toBe(400);
    const put = await http('PUT', `${a.url}/auth/preferences`, { token, body: { email: false, sms: true }, headers: { 'content-type': 'application/json' } });
    expect(put.status).toBe(200);
    expect(put.body.outcome.issue[0]).toMatchObject({ severity: 'warning', code: 'not-supported' });
    const appt = await appointment(p.ref, 7_000);
    await a.running.reminders.scheduleReminders(`Appointment/${appt.id}`, appt.start);
    await until('two in-app reminders', async () => ((await http('GET', `${a.base}/Communication?recipient=${p.ref}`)).body.entry ?? []).length === 2);
    await sleep(500);
    expect(mailsTo(p.email)).toHaveLength(0);
  });

  it('runs each reminder job exactly once with two server processes on one database', async () => {
    const before = a.running.jobs.runs(REMINDER_JOB) + b.running.jobs.runs(REMINDER_JOB);
    const people = await Promise.all(Array.from({ length: 6 }, () => patient()));
    const appts = await Promise.all(people.map((p) => appointment(p.ref, 5_000)));
    await Promise.all(appts.map((x, i) => (i % 2 ? a : b).running.reminders.scheduleReminders(`Appointment/${x.id}`, x.start)));
    await until('12 reminders', () => people.every((p) => mailsTo(p.email).length >= 2));
    await sleep(1500);
    for (const p of people) expect(mailsTo(p.email).map((m) => m.subject).sort()).toEqual([expect.stringMatching(/in 2 seconds$/), expect.stringMatching(/in 4 seconds$/)]);
    const runs = a.running.jobs.runs(REMINDER_JOB) + b.running.jobs.runs(REMINDER_JOB) - before;
    expect(runs).toBe(12);
  });
});

describe('no-show marking', () => {
  it('marks booked appointments past end + grace as noshow, and leaves arrived and future ones', async () => {
    const p = await patient();
    const late = await appointment(p.ref, -3 * 3_600_000);
    const arrived = await appointment(p.ref, -3 * 3_600_000, 'arrived');
    const recent = await appointment(p.ref, -40 * 60_000); // ended 10 minutes ago: within a 15-minute grace
    const marked = await markNoShows(a.running.repo, 15);
    expect(marked).toContain(late.id);
    expect(marked).not.toContain(arrived.id);
    expect(marked).not.toContain(recent.id);
    expect((await http('GET', `${a.base}/Appointment/${late.id}`)).body.status).toBe('noshow');
    expect((await http('GET', `${a.base}/Appointment/${recent.id}`)).body.status).toBe('booked');
    expect(await markNoShows(a.running.repo, 15)).not.toContain(late.id);
  });
});
