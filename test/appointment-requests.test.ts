/**
 * Appointments as EHRs post them (no $hold/$book): a `proposed` Appointment with a Slot is a hold, `pending`
 * and `booked` are bookings, all through the same slot claims; the official R4 example Appointment-examplereq
 * round-trips (everything sent comes back); 409 only when the slot is really taken.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
const EXAMPLES = dirname(createRequire(import.meta.url).resolve('hl7.fhir.r4.examples/package.json'));
const example = () => JSON.parse(readFileSync(join(EXAMPLES, 'Appointment-examplereq.json'), 'utf8'));
const iso = (minutesFromNow: number) => new Date(Math.floor(Date.now() / 60000) * 60000 + minutesFromNow * 60000).toISOString();

beforeAll(async () => {
  srv = await startTestServer({ RATING_SEARCH_PARAMETER: 'false' });
  const entry: unknown[] = [
    { resource: { resourceType: 'Patient', id: 'example', name: [{ family: 'Chalmers', given: ['Peter'] }] }, request: { method: 'PUT', url: 'Patient/example' } },
    { resource: { resourceType: 'Patient', id: 'other', name: [{ family: 'Other' }] }, request: { method: 'PUT', url: 'Patient/other' } },
    { resource: { resourceType: 'Practitioner', id: 'doc', name: [{ family: 'Doc' }] }, request: { method: 'PUT', url: 'Practitioner/doc' } },
    { resource: { resourceType: 'PractitionerRole', id: 'role', active: true, practitioner: { reference: 'Practitioner/doc' } }, request: { method: 'PUT', url: 'PractitionerRole/role' } },
    { resource: { resourceType: 'Schedule', id: 'sch', actor: [{ reference: 'PractitionerRole/role' }] }, request: { method: 'PUT', url: 'Schedule/sch' } },
    ...['example', 'b1', 'b2', 'b3', 'b4'].map((id, i) => ({
      resource: { resourceType: 'Slot', id, schedule: { reference: 'Schedule/sch' }, status: 'free', start: iso(3000 + i * 60), end: iso(3030 + i * 60) },
      request: { method: 'PUT', url: `Slot/${id}` },
    })),
  ];
  expect((await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'transaction', entry } })).status).toBe(200);
});
afterAll(async () => {
  await srv?.close();
});

/** Every element of `sent` is in `got`; arrays may have more entries appended (what the booking adds). */
function expectKept(sent: unknown, got: unknown, path = 'Appointment'): void {
  if (Array.isArray(sent)) {
    expect({ path, isArray: Array.isArray(got) }).toEqual({ path, isArray: true });
    sent.forEach((item, i) => expectKept(item, (got as unknown[])[i], `${path}[${i}]`));
  } else if (sent && typeof sent === 'object') {
    for (const [k, v] of Object.entries(sent)) expectKept(v, (got as Record<string, unknown>)?.[k], `${path}.${k}`);
  } else {
    expect({ path, value: got }).toEqual({ path, value: sent });
  }
}

describe('appointment requests posted by an EHR', () => {
  it('Appointment-examplereq (proposed, with a Slot) is taken as a hold and round-trips', async () => {
    const { id: _id, ...sent } = example();
    const res = await http('POST', `${srv.base}/Appointment`, { body: sent });
    expect(res.status).toBe(201);
    const got = (await http('GET', `${srv.base}/Appointment/${res.body.id}`)).body;
    expectKept(sent, got);
    // What the hold added: the slot's times, the practitioner role, our booking reference, the hold's expiry.
    expect(got.status).toBe('proposed');
    const slot = (await http('GET', `${srv.base}/Slot/example`)).body;
    expect(slot.status).toBe('busy-tentative');
    expect({ start: got.start, end: got.end }).toEqual({ start: slot.start, end: slot.end });
    expect(got.participant.map((p: any) => p.actor?.reference)).toContain('PractitionerRole/role');
    expect(got.identifier.map((i: any) => i.system)).toEqual(['http://example.org/sampleappointment-identifier', 'http://medivoy.example/fhir/booking-reference']);
    expect(got.extension.map((e: any) => e.url)).toContain('http://medivoy.example/fhir/StructureDefinition/hold-expires');
  });

  it('the held slot is taken for everyone else: a second request for it is a 409, a $book of it too', async () => {
    const again = await http('POST', `${srv.base}/Appointment`, { body: { ...example(), id: undefined, participant: [{ actor: { reference: 'Patient/other' }, status: 'needs-action' }] } });
    expect(again.status).toBe(409);
    expect(again.body.resourceType).toBe('OperationOutcome');
    const book = await http('POST', `${srv.base}/Appointment/$book`, { body: { resourceType: 'Parameters', parameter: [{ name: 'slot', valueString: 'Slot/example' }, { name: 'patient', valueString: 'Patient/other' }] } });
    expect(book.status).toBe(409);
  });

  it('pending and booked are bookings through the same claims; booked stays booked', async () => {
    const base = (slot: string, status: string) => ({ resourceType: 'Appointment', status, slot: [{ reference: `Slot/${slot}` }], participant: [{ actor: { reference: 'Patient/other' }, status: 'accepted' }] });
    const pending = await http('POST', `${srv.base}/Appointment`, { body: base('b1', 'pending') });
    expect(pending.status).toBe(201);
    expect(pending.body.status).toBe('pending');
    const booked = await http('POST', `${srv.base}/Appointment`, { body: { ...base('b2', 'booked'), participant: [{ actor: { reference: 'Patient/example' }, status: 'accepted' }] } });
    expect(booked.status).toBe(201);
    expect(booked.body.status).toBe('booked');
    expect((await http('GET', `${srv.base}/Slot/b2`)).body.status).toBe('busy');
    // Concurrent requests for one slot: exactly one wins.
    const racers = await Promise.all([0, 1, 2, 3].map(() => http('POST', `${srv.base}/Appointment`, { body: { ...base('b3', 'pending'), participant: [{ actor: { reference: 'Patient/example' }, status: 'accepted' }] } })));
    expect(racers.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
  });

  it('other statuses with a Slot, and times that are not the slot\'s, are refused with an outcome and store nothing', async () => {
    const before = (await http('GET', `${srv.base}/Appointment?_summary=count`)).body.total;
    const slot = (await http('GET', `${srv.base}/Slot/b4`)).body;
    const fulfilled = await http('POST', `${srv.base}/Appointment`, { body: { resourceType: 'Appointment', status: 'fulfilled', slot: [{ reference: 'Slot/b4' }], start: slot.start, end: slot.end, participant: [{ actor: { reference: 'Patient/other' }, status: 'accepted' }] } });
    expect(fulfilled.status).toBe(409);
    expect(fulfilled.body.issue[0].details.text).toMatch(/proposed \(a hold\), pending or booked, not fulfilled/);
    const wrongTimes = await http('POST', `${srv.base}/Appointment`, { body: { resourceType: 'Appointment', status: 'proposed', slot: [{ reference: 'Slot/b4' }], start: iso(5), end: slot.end, participant: [{ actor: { reference: 'Patient/other' }, status: 'accepted' }] } });
    expect(wrongTimes.status).toBe(400);
    expect(wrongTimes.body.issue[0].details.text).toMatch(/must be those of Slot\/b4/);
    expect((await http('GET', `${srv.base}/Slot/b4`)).body.status).toBe('free');
    expect((await http('GET', `${srv.base}/Appointment?_summary=count`)).body.total).toBe(before);
  });
});
