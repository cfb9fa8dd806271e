import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

const post = async (r: Record<string, unknown>) => (await http('POST', `${srv.base}/${r.resourceType}`, { body: r })).body;
const ids = (b: any) => (b.entry ?? []).map((e: any) => e.resource.id).sort();

describe('token and reference search (interim engine)', () => {
  it('matches codes, Codings, CodeableConcepts, Identifiers, ContactPoints and booleans in every R4 query form', async () => {
    const a = await post({ resourceType: 'Patient', active: true, gender: 'female', telecom: [{ system: 'phone', value: '555-0101' }], identifier: [{ system: 'urn:mrn', value: 'T-1' }] });
    const b = await post({ resourceType: 'Patient', active: false, gender: 'male', identifier: [{ value: 'T-2' }] });
    const hr = await post({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, subject: { reference: `Patient/${a.id}` } });
    const bp = await post({ resourceType: 'Observation', status: 'preliminary', code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }] }, subject: { reference: `Patient/${b.id}` } });
    const q = async (query: string) => ids((await http('GET', `${srv.base}/${query}`)).body);

    expect(await q('Patient?gender=female')).toEqual([a.id]);
    expect(await q('Patient?active=false')).toEqual([b.id]);
    expect(await q('Patient?telecom=555-0101')).toEqual([a.id]);
    expect(await q('Patient?identifier=urn:mrn|T-1')).toEqual([a.id]);
    expect(await q('Patient?identifier=|T-2')).toEqual([b.id]);
    expect(await q('Patient?identifier=urn:mrn|')).toEqual([a.id]);
    expect(await q('Patient?identifier=T-1,T-2')).toEqual([a.id, b.id].sort());
    expect(await q('Observation?code=http://loinc.org|8867-4')).toEqual([hr.id]);
    expect(await q('Observation?code=85354-9&status=preliminary')).toEqual([bp.id]);
    expect(await q('Observation?code=85354-9&status=final')).toEqual([]);
    expect(await q(`Observation?subject=Patient/${a.id}`)).toEqual([hr.id]);
    expect(await q(`Observation?subject:Patient=${b.id}`)).toEqual([bp.id]);
    expect(await q(`Observation?patient=Patient/${a.id},Patient/${b.id}`)).toEqual([hr.id, bp.id].sort());
  });

  it('refuses what it cannot answer instead of widening the result', async () => {
    expect((await http('GET', `${srv.base}/Patient?name=smith`)).status).toBe(400);
    expect((await http('GET', `${srv.base}/Patient?gender:not=male`)).status).toBe(400);
    expect((await http('GET', `${srv.base}/Observation?subject=not a reference`)).status).toBe(400);
  });
});
