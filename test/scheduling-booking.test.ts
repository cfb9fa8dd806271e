/**
 * Booking over HTTP with real tokens: $find, $hold, $book, plain POST Appointment, the lifecycle and its
 * role matrix, cancellation and rescheduling, hold expiry, and no double booking under 200 concurrent
 * requests from three server processes sharing one database.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { http, startTestServer, type TestServer } from './support/server.js';
import { userToken } from './support/browser.js';

const dbName = `t_${randomBytes(6).toString('hex')}`;
let srv: TestServer;
const PASSWORD = 'Blue-Harbor-72!';
let patientToken: string;
let otherPatientToken: string;
let doctorToken: string;
let alice: string;
let doctor: string;
const slots: string[] = [];
let nearSlot: string;

const params = (p: Record<string, string>) => ({ resourceType: 'Parameters', parameter: Object.entries(p).map(([name, v]) => ({ name, valueString: v })) });
const op = (path: string, p: Record<string, string> = {}, token?: string) => http('POST', `${srv.base}/${path}`, { body: params(p), ...(token ? { token } : {}) });
const iso = (minutesFromNow: number) => new Date(Math.floor(Date.now() / 60000) * 60000 + minutesFromNow * 60000).toISOString();

beforeAll(async () => {
  srv = await startTestServer({ CANCELLATION_CUTOFF_MINUTES: '60' }, { dbName, keepDb: true });
  const reg = async (given: string, email: string) =>
    (await http('POST', `${srv.url}/auth/register`, { body: { email, password: PASSWORD, givenName: given, familyName: 'Test' }, headers: { 'content-type': 'application/json' }, token: false })).body;
  alice = (await reg('Alice', 'alice@booking.example')).fhirUser;
  await reg('Bob', 'bob@booking.example');
  const doc = await srv.running.accounts.createAccount({ kind: 'practitioner', email: 'doc@booking.example', password: PASSWORD, person: { givenName: 'Greg', familyName: 'House' } });
  doctor = doc.fhirUser!;
  const entry: unknown[] = [
    { resource: { resourceType: 'Organization', id: 'org1', name: 'General' }, request: { method: 'PUT', url: 'Organization/org1' } },
    { resource: { resourceType: 'Location', id: 'loc1', name: 'Room 1', extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/timezone', valueCode: 'Europe/Berlin' }] }, request: { method: 'PUT', url: 'Location/loc1' } },
    { resource: { resourceType: 'PractitionerRole', id: 'role1', active: true, practitioner: { reference: doctor }, organization: { reference: 'Organization/org1' }, specialty: [{ coding: [{ system: 'http://snomed.info/sct', code: '394814009', display: 'General practice' }] }] }, request: { method: 'PUT', url: 'PractitionerRole/role1' } },
    { resource: { resourceType: 'PractitionerRole', id: 'role-inactive', active: false, practitioner: { reference: doctor } }, request: { method: 'PUT', url: 'PractitionerRole/role-inactive' } },
    { resource: { resourceType: 'Schedule', id: 'sch1', actor: [{ reference: 'PractitionerRole/role1' }, { reference: 'Location/loc1' }] }, request: { method: 'PUT', url: 'Schedule/sch1' } },
    { resource: { resourceType: 'Schedule', id: 'sch2', actor: [{ reference: 'PractitionerRole/role-inactive' }] }, request: { method: 'PUT', url: 'Schedule/sch2' } },
    { resource: { resourceType: 'Slot', id: 'closed', schedule: { reference: 'Schedule/sch2' }, status: 'free', start: iso(3000), end: iso(3030) }, request: { method: 'PUT', url: 'Slot/closed' } },
    { resource: { resourceType: 'Slot', id: 'near', schedule: { reference: 'Schedule/sch1' }, status: 'free', start: iso(30), end: iso(45) }, request: { method: 'PUT', url: 'Slot/near' } },
  ];
  for (let i = 0; i < 30; i++) {
    const id = `s${String(i).padStart(2, '0')}`;
    slots.push(id);
    entry.push({ resource: { resourceType: 'Slot', id, schedule: { reference: 'Schedule/sch1' }, status: 'free', start: iso(2 * 24 * 60 + i * 30), end: iso(2 * 24 * 60 + i * 30 + 30) }, request: { method: 'PUT', url: `Slot/${id}` } });
  }
  nearSlot = 'near';
  expect((await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'transaction', entry } })).status).toBe(200);
  patientToken = (await userToken(srv.running, 'alice@booking.example', PASSWORD, 'launch/patient patient/*.cruds')).access_token;
  otherPatientToken = (await userToken(srv.running, 'bob@booking.example', PASSWORD, 'launch/patient patient/*.cruds')).access_token;
  doctorToken = (await userToken(srv.running, 'doc@booking.example', PASSWORD, 'user/*.cruds')).access_token;
}, 60_000);
afterAll(async () => {
  await srv?.close();
});

describe('finding and booking', () => {
  it('$find proposes free slots of a practitioner as Appointments', async () => {
    const res = await http('GET', `${srv.base}/Appointment/$find?practitioner=${doctor}&_count=3`, { token: patientToken });
    expect(res.status).toBe(200);
    expect(res.body.entry).toHaveLength(3);
    expect(res.body.entry[0].resource).toMatchObject({ resourceType: 'Appointment', status: 'proposed', slot: [{ reference: 'Slot/near' }] });
    // Slots of an inactive role are never proposed, even though they are free.
    const all = await http('GET', `${srv.base}/Appointment/$find?practitioner=${doctor}&_count=100`, { token: patientToken });
    const proposed = all.body.entry.map((e: any) => e.resource.slot[0].reference);
    expect(proposed).toHaveLength(31);
    expect(proposed).not.toContain('Slot/closed');
    expect((await http('GET', `${srv.base}/Slot/closed`)).body.status).toBe('free');
  });

  it('a patient holds a slot and books it; the booking has a reference and the slot is busy', async () => {
    const held = await op('Appointment/$hold', { slot: 'Slot/s00' }, patientToken);
    expect(held.status).toBe(201);
    expect(held.body.status).toBe('proposed');
    expect((await http('GET', `${srv.base}/Slot/s00`)).body.status).toBe('busy-tentative');
    const booked = await op(`Appointment/${held.body.id}/$book`, {}, patientToken);
    expect(booked.status).toBe(200);
    expect(booked.body.status).toBe('pending');
    expect(booked.body.identifier[0].value).toMatch(/^MVY-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
    // The reference is claimed as a unique key, so no other appointment can be given it.
    const claim = await srv.running.mongo.db.collection('booking_references').findOne({ _id: booked.body.identifier[0].value } as never);
    expect(claim).toMatchObject({ appointment: `Appointment/${held.body.id}` });
    expect((await http('GET', `${srv.base}/Slot/s00`)).body.status).toBe('busy');
    // Someone else cannot take it.
    expect((await op('Appointment/$book', { slot: 'Slot/s00' }, otherPatientToken)).status).toBe(409);
  });

  it('refuses a role that is not active or verified, an overlapping booking of the same patient, and a patient out of reach', async () => {
    expect((await op('Appointment/$book', { slot: 'Slot/closed' }, patientToken)).status).toBe(409);
    const first = await op('Appointment/$book', { slot: 'Slot/s01' }, patientToken);
    expect(first.status).toBe(201);
    // s01 and s02 are consecutive, not overlapping: fine; the same time twice is not.
    await http('PUT', `${srv.base}/Slot/dup`, { body: { resourceType: 'Slot', id: 'dup', schedule: { reference: 'Schedule/sch1' }, status: 'free', start: first.body.start, end: first.body.end } });
    expect((await op('Appointment/$book', { slot: 'Slot/dup' }, patientToken)).status).toBe(409);
    // Bob's token cannot book for Alice.
    expect((await op('Appointment/$book', { slot: 'Slot/s03', patient: alice }, otherPatientToken)).status).toBe(404);
  });

  it('a plain POST Appointment with a Slot follows the booking rules; a PUT cannot change the status', async () => {
    const res = await http('POST', `${srv.base}/Appointment`, {
      token: otherPatientToken,
      body: { resourceType: 'Appointment', status: 'booked', slot: [{ reference: 'Slot/s04' }], participant: [{ actor: { reference: 'Patient/x' }, status: 'accepted' }] },
    });
    expect(res.status).toBe(409); // status booked is the practitioner's to give
    const ok = await http('POST', `${srv.base}/Appointment`, {
      token: otherPatientToken,
      body: { resourceType: 'Appointment', status: 'pending', slot: [{ reference: 'Slot/s04' }], participant: [] },
    });
    expect(ok.status).toBe(201);
    const appt = (await http('GET', `${srv.base}/Appointment/${ok.body.id}`, { token: otherPatientToken })).body;
    expect(appt.status).toBe('pending');
    expect((await http('GET', `${srv.base}/Slot/s04`)).body.status).toBe('busy');
    expect((await http('PUT', `${srv.base}/Appointment/${appt.id}`, { token: otherPatientToken, body: { ...appt, status: 'fulfilled' } })).status).toBe(409);
  });
});

describe('lifecycle', () => {
  it('follows the guide’s table with its roles: confirm, arrive (Encounter), complete; refusals are 403/409', async () => {
    const a = (await op('Appointment/$book', { slot: 'Slot/s05' }, patientToken)).body;
    expect((await op(`Appointment/${a.id}/$confirm`, {}, patientToken)).status).toBe(403);
    expect((await op(`Appointment/${a.id}/$arrive`, {}, doctorToken)).status).toBe(409); // not confirmed yet
    expect((await op(`Appointment/${a.id}/$confirm`, {}, doctorToken)).body.status).toBe('booked');
    expect((await op(`Appointment/${a.id}/$arrive`, {}, patientToken)).status).toBe(403);
    expect((await op(`Appointment/${a.id}/$arrive`, {}, doctorToken)).body.status).toBe('arrived');
    let enc = (await http('GET', `${srv.base}/Encounter?appointment=Appointment/${a.id}`)).body.entry;
    expect(enc[0].resource.status).toBe('in-progress');
    expect((await op(`Appointment/${a.id}/$complete`, {}, doctorToken)).body.status).toBe('fulfilled');
    enc = (await http('GET', `${srv.base}/Encounter?appointment=Appointment/${a.id}`)).body.entry;
    expect(enc[0].resource.status).toBe('finished');
    expect((await op(`Appointment/${a.id}/$cancel`, {}, doctorToken)).status).toBe(409);
  });

  it('a patient cancels their own appointment (reason, who, when; the slot is free again), not someone else’s, not too late', async () => {
    const a = (await op('Appointment/$book', { slot: 'Slot/s06' }, patientToken)).body;
    expect((await op(`Appointment/${a.id}/$cancel`, { reason: 'x' }, otherPatientToken)).status).toBe(404);
    const c = await op(`Appointment/${a.id}/$cancel`, { reason: 'Feeling better' }, patientToken);
    expect(c.body.status).toBe('cancelled');
    expect(c.body.cancelationReason.text).toBe('Feeling better');
    const who = c.body.extension.find((e: any) => e.url.endsWith('/cancellation'));
    expect(who.extension.find((e: any) => e.url === 'by').valueString).toBe(alice);
    expect((await http('GET', `${srv.base}/Slot/s06`)).body.status).toBe('free');
    expect((await op('Appointment/$book', { slot: 'Slot/s06' }, otherPatientToken)).status).toBe(201);
    // Within the cancellation cutoff (60 min here) only the practice may cancel.
    const late = (await op('Appointment/$book', { slot: `Slot/${nearSlot}` }, patientToken)).body;
    expect((await op(`Appointment/${late.id}/$cancel`, {}, patientToken)).status).toBe(409);
    expect((await op(`Appointment/${late.id}/$cancel`, {}, doctorToken)).body.status).toBe('cancelled');
  });

  it('reschedules atomically to a free slot', async () => {
    const a = (await op('Appointment/$book', { slot: 'Slot/s07' }, patientToken)).body;
    expect((await op(`Appointment/${a.id}/$reschedule`, { slot: 'Slot/s00' }, patientToken)).status).toBe(409); // taken
    const moved = await op(`Appointment/${a.id}/$reschedule`, { slot: 'Slot/s08' }, patientToken);
    expect(moved.body.slot[0].reference).toBe('Slot/s08');
    expect((await http('GET', `${srv.base}/Slot/s07`)).body.status).toBe('free');
    expect((await http('GET', `${srv.base}/Slot/s08`)).body.status).toBe('busy');
  });

  it('releases a hold when it lapses', async () => {
    // A second server of the same deployment configured with 2-second holds.
    const short = await startTestServer({ HOLD_SECONDS: '2', BASE_URL: srv.url }, { dbName, keepDb: true });
    try {
      const held = await http('POST', `${short.base}/Appointment/$hold`, { body: params({ slot: 'Slot/s09' }), token: patientToken });
      expect(held.status).toBe(201);
      expect((await op('Appointment/$book', { slot: 'Slot/s09' }, otherPatientToken)).status).toBe(409); // held
      await new Promise((r) => setTimeout(r, 2500));
      await short.running.booking.releaseLapsedHolds(); // the periodic sweep may have done it already
      expect((await http('GET', `${srv.base}/Appointment/${held.body.id}`, { token: patientToken })).body.status).toBe('cancelled');
      expect((await op('Appointment/$book', { slot: 'Slot/s09' }, otherPatientToken)).status).toBe(201);
    } finally {
      await short.close();
    }
  });
});

describe('a process that died half-way through a booking', () => {
  it('leaves a claim without its appointment: taken over once older than the orphan age, respected before', async () => {
    const claims = srv.running.mongo.db.collection<{ _id: string }>('slot_claims');
    const ghost = (slot: string, ageMs: number, appointment = 'Appointment/never-written') =>
      claims.insertOne({ _id: `Slot/${slot}`, appointment, state: 'booked', at: new Date(Date.now() - ageMs) } as never);
    // Fresh: it may be a booking still in flight, so the slot counts as taken.
    await ghost('s25', 1_000);
    expect((await op('Appointment/$book', { slot: 'Slot/s25' }, otherPatientToken)).status).toBe(409);
    // Older than the orphan age (5 minutes) and its appointment never written: the slot is free again.
    await ghost('s26', 6 * 60_000);
    const taken = await op('Appointment/$book', { slot: 'Slot/s26' }, otherPatientToken);
    expect(taken.status).toBe(201);
    expect(await claims.findOne({ _id: 'Slot/s26' })).toMatchObject({ appointment: `Appointment/${taken.body.id}`, state: 'booked' });
    // An old claim whose appointment is alive on that slot is a real booking: never taken over.
    // (The Slot is set free by hand, so that only the claim stands in the way.)
    await claims.updateOne({ _id: 'Slot/s26' }, { $set: { at: new Date(Date.now() - 6 * 60_000) } });
    const slot = JSON.parse((await srv.running.repo.read('Slot', 's26')).json!);
    await srv.running.repo.update({ ...slot, status: 'free' });
    const again = await op('Appointment/$book', { slot: 'Slot/s26' }, patientToken);
    expect(again.status).toBe(409);
    expect(again.body.issue[0].diagnostics ?? again.body.issue[0].details?.text).toMatch(/just taken/);
  });
});

describe('no double booking', () => {
  it('200 concurrent bookings of 10 slots from 3 server processes: exactly 10 succeed, the rest get 409', async () => {
    const others = [await startTestServer({}, { dbName, keepDb: true }), await startTestServer({}, { dbName, keepDb: true })];
    try {
      const free = slots.slice(10, 20);
      const patients = Array.from({ length: 200 }, (_, i) => ({ resource: { resourceType: 'Patient', id: `cp${i}`, name: [{ family: `Concurrent${i}` }] }, request: { method: 'PUT', url: `Patient/cp${i}` } }));
      expect((await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'transaction', entry: patients } })).status).toBe(200);
      const servers = [srv, ...others];
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => http('POST', `${servers[i % 3]!.base}/Appointment/$book`, { body: params({ slot: `Slot/${free[i % 10]}`, patient: `Patient/cp${i}` }) })),
      );
      const statuses = results.map((r) => r.status);
      expect(statuses.filter((s) => s === 201)).toHaveLength(10);
      expect(statuses.filter((s) => s === 409)).toHaveLength(190);
      for (const r of results.filter((x) => x.status === 409)) expect(r.body.resourceType).toBe('OperationOutcome');
      // Every slot is linked to exactly one active appointment.
      for (const s of free) {
        const linked = (await http('GET', `${srv.base}/Appointment?slot=Slot/${s}&status=proposed,pending,booked,arrived`)).body.entry ?? [];
        expect({ s, n: linked.length }).toEqual({ s, n: 1 });
      }
      // The refused bookings left no booking reference behind: every claimed reference belongs to a stored appointment.
      const winners = results.filter((r) => r.status === 201).map((r) => `Appointment/${r.body.id}`);
      const claimed = await srv.running.mongo.db.collection('booking_references').find({}).toArray();
      expect(winners.every((w) => claimed.some((c) => c.appointment === w))).toBe(true);
      for (const c of claimed) expect({ c: c.appointment, status: (await http('GET', `${srv.base}/${c.appointment}`)).status }).toEqual({ c: c.appointment, status: 200 });
    } finally {
      for (const o of others) await o.close();
    }
  }, 120_000);
});
