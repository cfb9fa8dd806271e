import { runEntryPoint } from './support/run-entry-point.js';
import { startSmtp, type Received } from './support/smtp.js';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { passwordProblems } from '../src/accounts/passwords.js';
import { http, startTestServer, type TestServer } from './support/server.js';

const STRONG = 'Gl4cier-Walk!9';
const STRONG_2 = 'Harb0ur#Lights7';

/** One received e-mail, with the body decoded from quoted-printable (all our parts are text). */

let smtp: Awaited<ReturnType<typeof startSmtp>>;
let srv: TestServer;

beforeAll(async () => {
  smtp = await startSmtp();
  srv = await startTestServer({ SMTP_URL: smtp.url });
});
afterAll(async () => {
  await srv?.close();
  await smtp?.close();
});

const newEmail = (tag = 'user') => `${tag}.${randomUUID().slice(0, 8)}@example.org`;
const newIp = () => `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
const post = (path: string, body: unknown, ip = newIp(), base = srv.url) =>
  http('POST', `${base}/auth${path}`, { body, headers: { 'content-type': 'application/json', 'x-forwarded-for': ip } });

/** Waits for the n-th message to an address whose subject matches. */
async function mailTo(address: string, subject: RegExp, timeoutMs = 10_000): Promise<Received> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const m = smtp.inbox.find((x) => x.to.includes(address) && subject.test(x.subject));
    if (m) return m;
    if (Date.now() > until) throw new Error(`no e-mail to ${address} matching ${subject}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function register(overrides: Record<string, unknown> = {}, base = srv.url) {
  const body = { email: newEmail(), password: STRONG, givenName: 'Ada', familyName: 'Lovelace', ...overrides };
  const res = await post('/register', body, newIp(), base);
  return { res, email: body.email as string, password: body.password as string };
}

const issueFields = (outcome: any): string[] => outcome.issue.flatMap((i: any) => i.expression ?? []);

describe('registration', () => {
  it('creates the Patient and the account linked to it, and sends the welcome e-mail', async () => {
    const { res, email } = await register({ givenName: "Ada O'Brien", phone: '+44 20 7946 0958', birthDate: '1990-12-10' });
    expect(res.status).toBe(201);
    expect(res.body.fhirUser).toMatch(/^Patient\/[\w.-]+$/);
    expect(res.headers.get('location')).toBe(`/fhir/${res.body.fhirUser}`);
    const account = await srv.running.accounts.findById(res.body.id);
    expect(account).toMatchObject({ email, kind: 'patient', fhirUser: res.body.fhirUser });
    expect(account!.passwordHash).toMatch(/^\$argon2id\$/);
    const patient = JSON.parse((await srv.running.repo.read('Patient', res.body.fhirUser.split('/')[1])).json!);
    expect(patient).toMatchObject({ name: [{ family: 'Lovelace', given: ["Ada O'Brien"] }], birthDate: '1990-12-10' });
    expect(patient.telecom).toEqual(expect.arrayContaining([{ system: 'email', value: email, use: 'home' }]));
    const mail = await mailTo(email, /Welcome/);
    expect(mail.body).toContain("Hello Ada O'Brien"); // text part
    expect(mail.body).toContain('Hello Ada O&#39;Brien'); // HTML part, escaped
  });

  it('reports every invalid field at once (400)', async () => {
    const res = await post('/register', { email: 'not-an-email', password: 'short', givenName: '', familyName: '<b>', birthDate: '2023-02-30', phone: 'call me' });
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(new Set(issueFields(res.body))).toEqual(new Set(['email', 'password', 'givenName', 'familyName', 'birthDate', 'phone']));
  });

  it('refuses non-JSON and oversized bodies', async () => {
    const form = await http('POST', `${srv.url}/auth/register`, { raw: 'email=a@b.org', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.status).toBe(415);
    const big = await post('/register', { email: newEmail(), password: STRONG, givenName: 'x'.repeat(20_000), familyName: 'Big' });
    expect(big.status).toBe(413);
  });

  it.each([
    ['too short and simple', 'abc'],
    ['a common word', 'Password1!'],
    ['leetspeak of a common word', 'P@ssw0rd!9X'],
    ['digits only', '12345678'],
    ['repeated characters', 'Zaaa#9yurt'],
    ['a keyboard sequence', 'Qwer#9yurtX'],
    ['the given name', 'Ada-Lovelace#9'],
  ])('refuses a weak password: %s', async (_why, password) => {
    const { res, email } = await register({ password });
    expect(res.status).toBe(400);
    expect(issueFields(res.body)).toContain('password');
    expect(await srv.running.accounts.findByEmail(email)).toBeUndefined();
  });

  it('refuses a password containing the e-mail name', async () => {
    expect(passwordProblems('Jdoe-Moon#42x', { email: 'jdoe@example.org' })).toEqual(['Password must not contain your name or e-mail address']);
    expect(passwordProblems(STRONG, { email: 'jdoe@example.org', names: ['Ada'] })).toEqual([]);
  });

  it('answers 409 for an address that is taken, whatever its case', async () => {
    const { email } = await register();
    const again = await register({ email: email.toUpperCase() });
    expect(again.res.status).toBe(409);
    expect(again.res.body.issue[0].code).toBe('conflict');
  });

  it('of concurrent registrations with one address, exactly one wins and leaves exactly one Patient', async () => {
    const email = newEmail('race');
    const results = await Promise.all(Array.from({ length: 5 }, () => register({ email, familyName: 'Racer' })));
    expect(results.map((r) => r.res.status).sort()).toEqual([201, 409, 409, 409, 409]);
    const patients = await srv.running.repo.findByCriteria('Patient', `email=${encodeURIComponent(email)}`, 10);
    expect(patients).toHaveLength(1);
    const account = await srv.running.accounts.findByEmail(email);
    expect(account!.fhirUser).toBe(`Patient/${patients[0]!.id}`);
    expect(await srv.running.mongo.db.collection('accounts').countDocuments({ email })).toBe(1);
  });
});

describe('sign-in limits', () => {
  const change = (email: string, currentPassword: string, ip: string, newPassword = STRONG_2) => post('/password/change', { email, currentPassword, newPassword }, ip);

  it('locks an account after 5 failures with 429 and Retry-After, even for the right password', async () => {
    const { email, password } = await register();
    for (let i = 0; i < 5; i++) expect((await change(email, `Wrong#Guess${i}x`, newIp())).status).toBe(401);
    const locked = await change(email, password, newIp());
    expect(locked.status).toBe(429);
    expect(locked.body.issue[0].code).toBe('throttled');
    const retryAfter = Number(locked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(800);
    expect(retryAfter).toBeLessThanOrEqual(900);
    await expect(srv.running.accounts.authenticate(email, password, newIp())).rejects.toMatchObject({ status: 429 });
  });

  it('a success resets the account counter', async () => {
    const { email, password } = await register();
    for (let i = 0; i < 4; i++) expect((await change(email, `Wrong#Guess${i}x`, newIp())).status).toBe(401);
    expect((await srv.running.accounts.authenticate(email, password, newIp()))._id).toBeDefined();
    for (let i = 0; i < 4; i++) expect((await change(email, `Wrong#Guess${i}x`, newIp())).status).toBe(401);
    expect((await change(email, password, newIp())).status).toBe(200);
  });

  it('limits failures per client IP across accounts', async () => {
    const ip = newIp();
    for (let i = 0; i < 20; i++) expect((await change(newEmail('spray'), 'Wrong#Guess1x', ip)).status).toBe(401);
    const res = await change(newEmail('spray'), 'Wrong#Guess1x', ip);
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await change(newEmail('spray'), 'Wrong#Guess1x', newIp())).status).toBe(401); // other addresses unaffected
  });
});

describe('password change', () => {
  it('needs the current password, applies the policy, and notifies the owner', async () => {
    const { email, password } = await register();
    const ip = newIp();
    expect((await post('/password/change', { email, currentPassword: 'Wrong#Guess1x', newPassword: STRONG_2 }, ip)).status).toBe(401);
    const weak = await post('/password/change', { email, currentPassword: password, newPassword: 'password' }, ip);
    expect(weak.status).toBe(400);
    expect(issueFields(weak.body)).toEqual(expect.arrayContaining(['newPassword']));
    expect((await post('/password/change', { email, currentPassword: password, newPassword: password }, ip)).status).toBe(400);
    const ok = await post('/password/change', { email, currentPassword: password, newPassword: STRONG_2 }, ip);
    expect(ok.status).toBe(200);
    await expect(srv.running.accounts.authenticate(email, password, ip)).rejects.toMatchObject({ status: 401 });
    expect((await srv.running.accounts.authenticate(email, STRONG_2, ip)).email).toBe(email);
    expect((await mailTo(email, /password was changed/)).body).toContain('Hello Ada');
  });
});

describe('password reset', () => {
  const resetToken = async (email: string) => /Reset code: ([A-Za-z0-9_-]{43})/.exec((await mailTo(email, /Reset your/)).body)![1]!;

  it('e-mails a single-use code that sets a new password', async () => {
    const { email, password } = await register();
    const req = await post('/password/reset-request', { email });
    expect(req.status).toBe(202);
    const token = await resetToken(email);
    const stored = await srv.running.mongo.db.collection('password_resets').findOne({});
    expect(JSON.stringify(stored)).not.toContain(token); // only the hash is kept

    const weak = await post('/password/reset', { token, newPassword: 'lovelace' });
    expect(weak.status).toBe(400); // refused password: the code is still usable
    expect(issueFields(weak.body)).toContain('newPassword');
    expect((await post('/password/reset', { token, newPassword: STRONG_2 })).status).toBe(200);
    expect((await srv.running.accounts.authenticate(email, STRONG_2, newIp())).email).toBe(email);
    await expect(srv.running.accounts.authenticate(email, password, newIp())).rejects.toMatchObject({ status: 401 });
    const reuse = await post('/password/reset', { token, newPassword: 'An0ther#Summit' });
    expect(reuse.status).toBe(400);
    expect(issueFields(reuse.body)).toEqual(['token']);
    await mailTo(email, /password was changed/);
  });

  it('answers the same for an unknown address and sends nothing', async () => {
    const email = newEmail('nobody');
    const res = await post('/password/reset-request', { email });
    expect(res.status).toBe(202);
    await srv.running.accounts.idle();
    expect(smtp.inbox.filter((m) => m.to.includes(email))).toHaveLength(0);
    expect((await post('/password/reset', { token: 'x'.repeat(43), newPassword: STRONG })).status).toBe(400);
  });

  it('refuses an expired code, and a lockout ends with its window (both short by configuration)', async () => {
    const quick = await startTestServer({ SMTP_URL: smtp.url, PASSWORD_RESET_TTL_SECONDS: '1', AUTH_LOCKOUT_SECONDS: '1' });
    try {
      const { email, password } = await register({}, quick.url);
      expect((await post('/password/reset-request', { email }, newIp(), quick.url)).status).toBe(202);
      const token = await resetToken(email);
      for (let i = 0; i < 5; i++) await expect(quick.running.accounts.authenticate(email, 'Wrong#Guess1x', newIp())).rejects.toMatchObject({ status: 401 });
      await expect(quick.running.accounts.authenticate(email, password, newIp())).rejects.toMatchObject({ status: 429 });
      await new Promise((r) => setTimeout(r, 1200));
      const res = await post('/password/reset', { token, newPassword: STRONG_2 }, newIp(), quick.url);
      expect(res.status).toBe(400);
      expect(issueFields(res.body)).toEqual(['token']);
      expect((await quick.running.accounts.authenticate(email, password, newIp())).email).toBe(email);
    } finally {
      await quick.close();
    }
  });
});

describe('scripts/create-admin.ts', () => {
  const createAdmin = (args: string[], env: Record<string, string>, stdin?: string) =>
    runEntryPoint('scripts/create-admin.ts', args, {
      MONGODB_URI: process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/',
      MONGODB_DB: srv.running.mongo.db.databaseName, SMTP_URL: smtp.url, LOG_LEVEL: 'error', ...env,
    }, stdin ?? '');

  it('refuses a weak password and names the problems', async () => {
    const email = newEmail('root');
    const res = await createAdmin(['--email', email], { ADMIN_PASSWORD: 'admin123' });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/upper-case/);
    expect(res.stderr).toMatch(/common word/);
    expect(await srv.running.accounts.findByEmail(email)).toBeUndefined();
  });

  it('creates the first system administrator, then only with --allow-additional', async () => {
    const email = newEmail('root');
    const res = await createAdmin(['--email', email], { ADMIN_PASSWORD: STRONG });
    expect(res).toMatchObject({ code: 0, stdout: expect.stringContaining(`created system administrator ${email}`) });
    const account = await srv.running.accounts.authenticate(email, STRONG, newIp());
    expect(account).toMatchObject({ kind: 'system-admin' });
    expect(account.fhirUser).toBeUndefined();
    await mailTo(email, /Welcome/);

    const second = newEmail('root');
    const refused = await createAdmin(['--email', second], {}, `${STRONG_2}\n`);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already exists/);
    const allowed = await createAdmin(['--email', second, '--allow-additional'], {}, `${STRONG_2}\n`); // password on stdin
    expect(allowed.code).toBe(0);
    expect((await srv.running.accounts.authenticate(second, STRONG_2, newIp())).kind).toBe('system-admin');
  });

  it('needs an e-mail address', async () => {
    const res = await createAdmin([], { ADMIN_PASSWORD: STRONG });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/usage/);
  });
});
