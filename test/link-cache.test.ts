/**
 * A practitioner's link to a patient (an appointment) is checked on every read of that patient's data and,
 * once found, remembered per process for ACCESS_CACHE_SECONDS (src/auth/link-cache.ts). Only links are
 * remembered: a new one counts at once; one that goes away counts for at most that time, and not at all with
 * the cache off. An account that misses three times within one lifetime gets its whole panel loaded into the
 * cache in the background, so the next of its patients are found without a query.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { LinkCache } from '../src/auth/link-cache.js';
import { http, startTestServer, type TestServer } from './support/server.js';
import { userToken } from './support/browser.js';

const PASSWORD = 'Blue-Harbor-72!';

async function scenario(srv: TestServer, email: string) {
  const doc = await srv.running.accounts.createAccount({ kind: 'practitioner', email, password: PASSWORD, person: { givenName: 'Link', familyName: 'Tester' } });
  const patient = (await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', name: [{ family: 'Linked' }] } })).body;
  const token = (await userToken(srv.running, email, PASSWORD, 'openid fhirUser user/*.cruds')).access_token;
  const read = async () => (await http('GET', `${srv.base}/Patient/${patient.id}`, { token })).status;
  return { fhirUser: doc.fhirUser!, patient, read };
}

const appointmentWith = (patientRef: string, practitionerRef: string) => ({
  resourceType: 'Appointment', status: 'booked', start: '2031-03-03T09:00:00Z', end: '2031-03-03T09:30:00Z',
  participant: [{ actor: { reference: patientRef }, status: 'accepted' }, { actor: { reference: practitionerRef }, status: 'accepted' }],
});

describe('practitioner–patient links', () => {
  let cached: TestServer;
  let uncached: TestServer;
  beforeAll(async () => {
    // One process each: the cache is per process by design.
    cached = await startTestServer({ ACCESS_CACHE_SECONDS: '30' }, { single: true });
    uncached = await startTestServer({ ACCESS_CACHE_SECONDS: '0' }, { single: true });
  }, 60_000);
  afterAll(async () => {
    await cached?.close();
    await uncached?.close();
  });

  it('count at once when new and for at most the cache time when gone', async () => {
    const s = await scenario(cached, 'links-cached@example.org');
    expect(await s.read()).toBe(404); // not (yet) their patient: not even its existence is told
    const appt = (await http('POST', `${cached.base}/Appointment`, { body: appointmentWith(`Patient/${s.patient.id}`, s.fhirUser) })).body;
    expect(await s.read()).toBe(200); // a refusal is never remembered
    expect((await http('DELETE', `${cached.base}/Appointment/${appt.id}`)).status).toBe(200);
    // The link found a moment ago is remembered (ACCESS_CACHE_SECONDS=30), as documented…
    expect(await s.read()).toBe(200);
  });

  it('in a search of all their patients: new ones at once, removed ones for at most the cache time', async () => {
    for (const srv of [cached, uncached]) {
      const email = `links-search-${srv === cached ? 'on' : 'off'}@example.org`;
      const doc = await srv.running.accounts.createAccount({ kind: 'practitioner', email, password: PASSWORD, person: { givenName: 'List', familyName: 'Tester' } });
      const token = (await userToken(srv.running, email, PASSWORD, 'openid fhirUser user/*.cruds')).access_token;
      const book = async () => {
        const patient = (await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', name: [{ family: 'Listed' }] } })).body.id as string;
        const appt = (await http('POST', `${srv.base}/Appointment`, { body: appointmentWith(`Patient/${patient}`, doc.fhirUser!) })).body.id as string;
        return { patient, appt };
      };
      const listed = async () => {
        const res = await http('GET', `${srv.base}/Patient?_count=50`, { token });
        expect(res.status).toBe(200);
        return ((res.body.entry ?? []) as { resource: { id: string } }[]).map((e) => e.resource.id).sort();
      };
      const first = await book();
      expect(await listed()).toEqual([first.patient]);
      const second = await book(); // after the list was loaded (and, with the cache, kept)
      expect(await listed()).toEqual([first.patient, second.patient].sort());
      expect((await http('DELETE', `${srv.base}/Appointment/${first.appt}`)).status).toBe(200);
      expect(await listed()).toEqual(srv === cached ? [first.patient, second.patient].sort() : [second.patient]);
    }
  });

  it('are checked on every request with the cache off', async () => {
    const s = await scenario(uncached, 'links-uncached@example.org');
    const appt = (await http('POST', `${uncached.base}/Appointment`, { body: appointmentWith(`Patient/${s.patient.id}`, s.fhirUser) })).body;
    expect(await s.read()).toBe(200);
    expect((await http('DELETE', `${uncached.base}/Appointment/${appt.id}`)).status).toBe(200);
    expect(await s.read()).toBe(404);
  });
});

describe('a practitioner\'s panel', () => {
  it('is loaded once per lifetime, after the third miss', async () => {
    const links = new LinkCache(200);
    expect([links.missed('a'), links.missed('a'), links.missed('a'), links.missed('a')]).toEqual([false, false, true, false]);
    expect(links.missed('b')).toBe(false); // per account
    await sleep(250);
    expect([links.missed('a'), links.missed('a'), links.missed('a')]).toEqual([false, false, true]); // a new lifetime
    const off = new LinkCache(0);
    expect([1, 2, 3, 4].map(() => off.missed('a'))).toEqual([false, false, false, false]);
  });

  it('is kept whole only when short, and the kept lists stay within the cache\'s size', () => {
    const links = new LinkCache(60_000, 20); // a tenth of 20: lists of up to 2 patients are kept
    links.putList('long|', ['p1', 'p2', 'p3'], new Date());
    expect(links.list('long|')).toBeUndefined();
    expect(links.has('long|p1') && links.has('long|p2')).toBe(true); // its first links still count
    for (let i = 0; i <= 10; i++) links.putList(`a${i}|`, ['x', 'y'], new Date(1000 * i));
    expect(links.list('a0|')).toBeUndefined(); // 22 ids would exceed 20: the oldest list went
    expect(links.list('a10|')).toEqual({ ids: ['x', 'y'], since: new Date(10_000), ends: expect.any(Number) });
    expect(links.list('a1|')).toBeDefined();
  });

  it('fills the cache with patients not read yet', async () => {
    const srv = await startTestServer({ ACCESS_CACHE_SECONDS: '30' }, { single: true });
    try {
      const doc = await srv.running.accounts.createAccount({ kind: 'practitioner', email: 'links-panel@example.org', password: PASSWORD, person: { givenName: 'Panel', familyName: 'Tester' } });
      const patients: string[] = [];
      const appointments: string[] = [];
      for (let i = 0; i < 5; i++) {
        patients.push((await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', name: [{ family: `Panel${i}` }] } })).body.id);
        appointments.push((await http('POST', `${srv.base}/Appointment`, { body: appointmentWith(`Patient/${patients[i]}`, doc.fhirUser!) })).body.id);
      }
      const token = (await userToken(srv.running, 'links-panel@example.org', PASSWORD, 'openid fhirUser user/*.cruds')).access_token;
      const read = async (id: string) => (await http('GET', `${srv.base}/Patient/${id}`, { token })).status;
      const remembered = (id: string) => srv.running.auth.linkCache!.has(`practitioner|${doc.fhirUser}||${id}`);
      for (const id of patients.slice(0, 3)) expect(await read(id)).toBe(200);
      // The third miss started the panel load; patient 4, never read, turns up in the cache.
      for (let i = 0; i < 100 && !remembered(patients[4]!); i++) await sleep(50);
      expect(remembered(patients[4]!)).toBe(true);
      expect(remembered(patients[3]!)).toBe(true);
      // …and is found from it: its only appointment gone, it still counts for the cache's lifetime, as any link found.
      expect((await http('DELETE', `${srv.base}/Appointment/${appointments[4]}`)).status).toBe(200);
      expect(await read(patients[4]!)).toBe(200);
      // A patient never linked is still refused: only links are remembered.
      const stranger = (await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', name: [{ family: 'Stranger' }] } })).body.id;
      expect(await read(stranger)).toBe(404);
    } finally {
      await srv.close();
    }
  }, 60_000);
});
