import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { importFiles } from '../src/bulk/import-files.js';
import { authHeaders, http, startTestServer, type TestServer } from './support/server.js';

const SAMPLE = new URL('../resources/sample-data/medivoy-sample.json', import.meta.url).pathname;

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

describe('sample data (scripts/seed)', () => {
  it('loads, and loading again writes no new version', async () => {
    // Versions of the sample's own types only: the server writes a few resources of its own in the background
    // (the review Questionnaire, the rating SearchParameter and its re-index Task).
    const types = [...new Set((JSON.parse(readFileSync(SAMPLE, 'utf8')).entry as { resource: { resourceType: string } }[]).map((e) => e.resource.resourceType))];
    const versions = async () => {
      let n = 0;
      for (const t of types) n += (await http('GET', `${srv.base}/${t}/_history?_count=1`)).body.total as number;
      return n;
    };
    const initial = await versions();
    const first = await importFiles({ baseUrl: srv.base, headers: () => authHeaders(srv.base), paths: [SAMPLE] });
    expect(first.failures).toEqual([]);
    const before = { body: { total: await versions() } };
    const second = await importFiles({ baseUrl: srv.base, headers: () => authHeaders(srv.base), paths: [SAMPLE] });
    expect(second.failures).toEqual([]);
    const after = { body: { total: await versions() } };
    expect(after.body.total).toBe(before.body.total);
    expect(before.body.total - initial).toBe(first.resources);

    const role = await http('GET', `${srv.base}/PractitionerRole/mvy-pract-3-role`);
    expect(role.body.specialty[0].coding[0].code).toBe('394582007');
    expect(role.body.availableTime[0].daysOfWeek).toContain('mon');
    const appt = await http('GET', `${srv.base}/Appointment/mvy-appt-1`);
    expect(appt.body.participant.map((p: any) => p.actor.reference)).toEqual(['Patient/mvy-pat-1', 'PractitionerRole/mvy-pract-1-role']);
    expect((await http('GET', `${srv.base}/Coverage/mvy-pat-2-coverage`)).body.payor[0].reference).toBe('Organization/mvy-payer-acme');
  });
});
