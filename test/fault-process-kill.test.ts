import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MongoClient } from 'mongodb';
import { ServerProcess } from './support/server-process.js';
import { startSmtp } from './support/smtp.js';
import { params } from './support/booking-fixture.js';
import { waitFor } from './support/wait.js';

/**
 * A server process killed with SIGKILL while it holds job leases (booking confirmations it is sending: the
 * SMTP server holds them unanswered) and slot holds. Another process on the same database takes the work
 * over after the lease: every confirmation is sent once, the holds lapse, no booking is lost or doubled.
 */
const DB = `t_${randomBytes(6).toString('hex')}`;
const LEASE = { JOBS_LEASE_SECONDS: '3', HOLD_SECONDS: '3', JOBS_POLL_MS: '200', MONGODB_DB: DB, RATE_LIMIT_ENABLED: 'false' };
let holding = true;
const held: (() => void)[] = [];
let smtp: Awaited<ReturnType<typeof startSmtp>>;
let a: ServerProcess | undefined;
let b: ServerProcess | undefined;
let mongo: MongoClient;

beforeAll(async () => {
  smtp = await startSmtp({ hold: () => holding, onHeld: (release) => held.push(release) });
  mongo = await new MongoClient(process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/').connect();
});
afterAll(async () => {
  await a?.kill('SIGKILL');
  await b?.kill('SIGTERM');
  await mongo?.db(DB).dropDatabase().catch(() => undefined);
  await mongo?.close();
  await smtp?.close();
});

const until = (what: string, ok: () => Promise<boolean> | boolean) => waitFor(what, ok, 40_000);
const iso = (minutes: number) => new Date(Math.floor(Date.now() / 60000) * 60000 + minutes * 60000).toISOString();

describe('a server process killed with SIGKILL', () => {
  it('leaves its job leases and slot holds to another process: every notice sent once, no booking lost or doubled', async () => {
    a = await ServerProcess.start({ ...LEASE, SMTP_URL: smtp.url });
    const ta = await a.tokenSource(DB);
    const call = async (srv: ServerProcess, tokens: typeof ta, method: string, path: string, body?: unknown) => {
      const res = await fetch(`${srv.base}${path}`, { method, headers: { authorization: `Bearer ${await tokens.token()}`, 'content-type': 'application/fhir+json' }, body: body ? JSON.stringify(body) : undefined });
      return { status: res.status, body: (await res.json().catch(() => undefined)) as any };
    };
    const tag = randomBytes(3).toString('hex');
    const entry: unknown[] = [
      { resource: { resourceType: 'Practitioner', id: `pr-${tag}`, name: [{ family: 'House' }] }, request: { method: 'PUT', url: `Practitioner/pr-${tag}` } },
      { resource: { resourceType: 'PractitionerRole', id: `role-${tag}`, active: true, practitioner: { reference: `Practitioner/pr-${tag}` } }, request: { method: 'PUT', url: `PractitionerRole/role-${tag}` } },
      { resource: { resourceType: 'Schedule', id: `sch-${tag}`, actor: [{ reference: `PractitionerRole/role-${tag}` }] }, request: { method: 'PUT', url: `Schedule/sch-${tag}` } },
    ];
    const slots = Array.from({ length: 4 }, (_, i) => `${tag}-s${i}`);
    slots.forEach((id, i) => entry.push({ resource: { resourceType: 'Slot', id, schedule: { reference: `Schedule/sch-${tag}` }, status: 'free', start: iso(2880 + i * 30), end: iso(2910 + i * 30) }, request: { method: 'PUT', url: `Slot/${id}` } }));
    const patients = Array.from({ length: 4 }, (_, i) => `pt${i}-${tag}`);
    patients.forEach((id, i) => entry.push({ resource: { resourceType: 'Patient', id, name: [{ family: 'Kill', given: [`P${i}`] }], telecom: [{ system: 'email', value: `${id}@example.org` }] }, request: { method: 'PUT', url: `Patient/${id}` } }));
    expect((await call(a, ta, 'POST', '', { resourceType: 'Bundle', type: 'transaction', entry })).status).toBe(200);

    // On process A: two bookings (their confirmations become jobs A runs, stuck in SMTP) and two holds.
    const booked: string[] = [];
    for (const i of [0, 1]) {
      const res = await call(a, ta, 'POST', '/Appointment/$book', params({ slot: `Slot/${slots[i]}`, patient: `Patient/${patients[i]}` }));
      expect(res.status).toBe(201);
      booked.push(res.body.id);
    }
    const holds: string[] = [];
    for (const i of [2, 3]) {
      const res = await call(a, ta, 'POST', '/Appointment/$hold', params({ slot: `Slot/${slots[i]}`, patient: `Patient/${patients[i]}` }));
      expect(res.status).toBe(201);
      holds.push(res.body.id);
    }
    await until('A is sending both confirmations', () => held.length >= 2);
    const claims = mongo.db(DB).collection<{ _id: string; owner: string }>('job_claims');
    expect((await claims.find({ _id: { $regex: '^notice:' } }).toArray()).filter((c) => c.owner.includes(`:${a!.child.pid}:`))).toHaveLength(2);

    await a.kill('SIGKILL');
    await ta.close();
    holding = false; // SMTP answers again; what A was sending was never accepted (its connections died with it)
    expect(smtp.inbox).toHaveLength(0);

    b = await ServerProcess.start({ ...LEASE, SMTP_URL: smtp.url });
    const tb = await b.tokenSource(DB);
    try {
      // B takes the confirmations over after the lease and sends each once.
      const confirmations = () => smtp.inbox.filter((m) => /is booked/.test(m.subject));
      await until('both confirmations sent by B', async () => confirmations().length >= 2 && (await mongo.db(DB).collection('jobs').countDocuments({ name: 'appointment-notice' })) === 0);
      expect(confirmations().map((m) => m.to[0]).sort()).toEqual([`${patients[0]}@example.org`, `${patients[1]}@example.org`]);

      // B's sweep releases A's lapsed holds: the held appointments are cancelled and their slots free again.
      await until('the holds lapsed', async () => {
        for (const i of [2, 3]) if ((await call(b!, tb, 'GET', `/Slot/${slots[i]}`)).body.status !== 'free') return false;
        for (const id of holds) if ((await call(b!, tb, 'GET', `/Appointment/${id}`)).body.status !== 'cancelled') return false;
        return true;
      });
      for (const i of [2, 3]) expect((await call(b, tb, 'POST', '/Appointment/$book', params({ slot: `Slot/${slots[i]}`, patient: `Patient/${patients[i]}` }))).status).toBe(201);

      // No booking lost or doubled: A's bookings stand, and each slot has exactly one live appointment.
      for (const id of booked) expect((await call(b, tb, 'GET', `/Appointment/${id}`)).body.status).toBe('pending');
      for (const s of slots) {
        const res = await call(b, tb, 'GET', `/Appointment?slot=Slot/${s}&_count=50`);
        const live = (res.body.entry ?? []).map((e: any) => e.resource).filter((x: any) => x.status !== 'cancelled');
        expect({ slot: s, live: live.length }).toEqual({ slot: s, live: 1 });
        expect((await call(b, tb, 'GET', `/Slot/${s}`)).body.status).toBe('busy');
      }
      // Nothing sent twice, even after B ran every job.
      await until('the new confirmations sent', async () => confirmations().length >= 4 && (await mongo.db(DB).collection('jobs').countDocuments({ name: 'appointment-notice' })) === 0);
      expect(confirmations()).toHaveLength(4);
      expect(new Set(confirmations().map((m) => m.to[0])).size).toBe(4);
    } finally {
      await tb.close();
    }
  }, 90_000);
});
