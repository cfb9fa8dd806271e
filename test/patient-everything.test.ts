import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

const post = async (resource: Record<string, unknown>) => {
  const r = await http('POST', `${srv.base}/${resource.resourceType}`, { body: resource });
  expect(r.status).toBe(201);
  return r.body;
};

async function record() {
  const org = await post({ resourceType: 'Organization', name: 'Clinic' });
  const doc = await post({ resourceType: 'Practitioner', name: [{ family: 'Doc' }] });
  const unrelatedDoc = await post({ resourceType: 'Practitioner', name: [{ family: 'Other' }] });
  const pat = await post({ resourceType: 'Patient', name: [{ family: 'Everything' }], managingOrganization: { reference: `Organization/${org.id}` } });
  const other = await post({ resourceType: 'Patient', name: [{ family: 'Else' }] });
  const obs = await post({ resourceType: 'Observation', status: 'final', code: { text: 'hr' }, subject: { reference: `Patient/${pat.id}` }, performer: [{ reference: `Practitioner/${doc.id}` }] });
  const enc = await post({ resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, subject: { reference: `Patient/${pat.id}` } });
  const appt = await post({ resourceType: 'Appointment', status: 'booked', start: '2026-01-05T09:00:00Z', end: '2026-01-05T09:30:00Z', participant: [{ actor: { reference: `Patient/${pat.id}` }, status: 'accepted' }] });
  await post({ resourceType: 'Observation', status: 'final', code: { text: 'hr' }, subject: { reference: `Patient/${other.id}` }, performer: [{ reference: `Practitioner/${unrelatedDoc.id}` }] });
  return { org, doc, pat, obs, enc, appt };
}

const keys = (b: any) => b.entry.filter((e: any) => e.search.mode === 'match').map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort();

describe('Patient/$everything', () => {
  it("returns the patient's compartment and the practitioners and organizations it refers to, nothing else", async () => {
    const r = await record();
    const res = await http('GET', `${srv.base}/Patient/${r.pat.id}/$everything`);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('searchset');
    expect(res.body.entry[0].resource.id).toBe(r.pat.id);
    expect(keys(res.body)).toEqual(
      [`Patient/${r.pat.id}`, `Observation/${r.obs.id}`, `Encounter/${r.enc.id}`, `Appointment/${r.appt.id}`, `Practitioner/${r.doc.id}`, `Organization/${r.org.id}`].sort(),
    );
    expect(res.body.total).toBe(6);
    const typeLevel = await http('GET', `${srv.base}/Patient/$everything?_id=${r.pat.id}`);
    expect(keys(typeLevel.body)).toEqual(keys(res.body));
  });

  it('honours _type, _since and _count with paging links', async () => {
    const r = await record();
    const onlyObs = await http('GET', `${srv.base}/Patient/${r.pat.id}/$everything?_type=Observation`);
    expect(keys(onlyObs.body)).toEqual([`Observation/${r.obs.id}`, `Patient/${r.pat.id}`].sort());

    const later = await http('PUT', `${srv.base}/Encounter/${r.enc.id}`, { body: { ...r.enc, status: 'cancelled' } });
    const since = await http('GET', `${srv.base}/Patient/${r.pat.id}/$everything?_since=${encodeURIComponent(later.body.meta.lastUpdated)}`);
    expect(keys(since.body)).toEqual([`Encounter/${r.enc.id}`]);

    const seen: string[] = [];
    let url: string | undefined = `${srv.base}/Patient/${r.pat.id}/$everything?_count=2`;
    while (url) {
      const page: any = await http('GET', url);
      expect(page.body.entry.length).toBeLessThanOrEqual(2);
      seen.push(...keys(page.body));
      url = page.body.link.find((l: any) => l.relation === 'next')?.url;
    }
    expect(seen.sort()).toEqual(keys((await http('GET', `${srv.base}/Patient/${r.pat.id}/$everything`)).body));
  });

  it('answers 404 for an unknown patient, 410 for a deleted one, 400 for bad parameters', async () => {
    expect((await http('GET', `${srv.base}/Patient/nobody/$everything`)).status).toBe(404);
    const p = await post({ resourceType: 'Patient' });
    await http('DELETE', `${srv.base}/Patient/${p.id}`);
    expect((await http('GET', `${srv.base}/Patient/${p.id}/$everything`)).status).toBe(410);
    expect((await http('GET', `${srv.base}/Patient/${p.id}/$everything?_since=yesterday`)).status).toBe(400);
    expect((await http('GET', `${srv.base}/Patient/${p.id}/$everything?_type=Nonsense`)).status).toBe(400);
    expect((await http('GET', `${srv.base}/Observation/x/$everything`)).status).toBe(404);
  });
});
