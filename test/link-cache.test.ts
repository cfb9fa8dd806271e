/**
 * A practitioner's link to a patient (an appointment) is checked on every read of that patient's data and,
 * once found, remembered per process for ACCESS_CACHE_SECONDS (src/auth/link-cache.ts). Only links are
 * remembered: a new one counts at once; one that goes away counts for at most that time, and not at all with
 * the cache off.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
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

  it('are checked on every request with the cache off', async () => {
    const s = await scenario(uncached, 'links-uncached@example.org');
    const appt = (await http('POST', `${uncached.base}/Appointment`, { body: appointmentWith(`Patient/${s.patient.id}`, s.fhirUser) })).body;
    expect(await s.read()).toBe(200);
    expect((await http('DELETE', `${uncached.base}/Appointment/${appt.id}`)).status).toBe(200);
    expect(await s.read()).toBe(404);
  });
});
