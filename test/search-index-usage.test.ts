/**
 * Typical searches are index lookups, not collection scans: on MongoDB the multikey search indexes
 * (IXSCAN), on FerretDB the GIN indexes this server adds to its PostgreSQL tables (Bitmap Index Scan).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
  const entry = Array.from({ length: 30 }, (_, i) => [
    { resource: { resourceType: 'Patient', id: `ix-p${i}`, name: [{ family: `Family${i}` }], identifier: [{ system: 'urn:mrn', value: `M${i}` }] }, request: { method: 'PUT', url: `Patient/ix-p${i}` } },
    {
      resource: { resourceType: 'Observation', id: `ix-o${i}`, status: 'final', code: { coding: [{ system: 'http://loinc.org', code: i % 2 ? '8867-4' : '2339-0' }] }, subject: { reference: `Patient/ix-p${i}` }, effectiveDateTime: '2024-01-01' },
      request: { method: 'PUT', url: `Observation/ix-o${i}` },
    },
  ]).flat();
  expect((await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'transaction', entry } })).status).toBe(200);
}, 60_000);
afterAll(async () => {
  await srv?.close();
});

const plan = async (type: string, query: string) => JSON.stringify(await srv.running.search.explain(type, [...new URLSearchParams(query)]));

describe('index usage (explain)', () => {
  it.each([
    ['Patient', 'identifier=urn:mrn|M7'],
    ['Patient', 'name=family1'],
    ['Patient', '_id=ix-p3'],
    ['Observation', 'patient=Patient/ix-p3&code=http://loinc.org|8867-4&date=ge2023'],
    ['Observation', 'code=8867-4&status=final'],
  ])('%s?%s uses an index', async (type, query) => {
    const explained = await plan(type, query);
    if (srv.running.mongo.isFerretDB && !process.env.FERRETDB_POSTGRES_URL) {
      // FerretDB on SQLite (no PostgreSQL to add GIN indexes to): the equality is still pushed down.
      expect(explained).toMatch(/"filterPushdown":true/);
    } else if (srv.running.mongo.isFerretDB) {
      // The driving equality is pushed down to PostgreSQL and answered by one of our GIN indexes.
      expect(explained).toMatch(/"filterPushdown":true/);
      expect(explained).toMatch(/Bitmap Index Scan/);
      expect(explained).toMatch(/_mvy_(tk|st|_id)/); // `_id=` is a lookup by the primary key `Type/id`
    } else {
      expect(explained).toMatch(/IXSCAN/);
      expect(explained).not.toMatch(/COLLSCAN/);
    }
  });
});
