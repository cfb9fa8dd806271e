/**
 * read and vread without the resource cache: on FerretDB with its PostgreSQL at hand (FERRETDB_SQL_SEARCH, the
 * default) they are one SQL statement on the unique `_id` index, returning only the version's fields, instead of
 * a `find` that FerretDB answers by decoding the whole document with its search arrays. Either way a read sees
 * every acknowledged write at once: the current version after an update, 410 after a delete, each old version.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { CommandStartedEvent } from 'mongodb';
import { http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
const finds: string[] = [];
const onCommand = (e: CommandStartedEvent) => {
  if (e.commandName === 'find') finds.push(String(e.command.find));
};
beforeAll(async () => {
  srv = await startTestServer({ RESOURCE_CACHE_SECONDS: '0' }, { single: true });
  srv.running.mongo.client.on('commandStarted', onCommand);
});
afterAll(async () => {
  srv?.running.mongo.client.off('commandStarted', onCommand);
  await srv?.close();
});

const sqlReads = !!process.env.FERRETDB_POSTGRES_URL;
/** A GET, with the driver `find`s on resource collections it caused (the test's requests run one at a time). */
const readFinds: string[] = [];
async function get(path: string) {
  const before = finds.length;
  const res = await http('GET', `${srv.base}/${path}`);
  readFinds.push(...finds.slice(before).filter((c) => c.startsWith('fhir_')));
  return res;
}

describe('read and vread without the cache', () => {
  it('see every acknowledged write at once, and on FerretDB ask PostgreSQL instead of the driver', async () => {
    const created = await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', name: [{ family: 'Direct' }] } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const first = await get(`Patient/${id}`);
    expect({ status: first.status, family: first.body.name[0].family, version: first.body.meta.versionId, etag: first.headers.get('etag') }).toEqual({ status: 200, family: 'Direct', version: '1', etag: 'W/"1"' });
    expect(first.body.meta.lastUpdated).toBe(created.body.meta.lastUpdated);
    for (let v = 2; v <= 4; v++) {
      expect((await http('PUT', `${srv.base}/Patient/${id}`, { body: { resourceType: 'Patient', id, name: [{ family: `Direct${v}` }] } })).status).toBe(200);
      const now = await get(`Patient/${id}`);
      expect({ family: now.body.name[0].family, version: now.body.meta.versionId }).toEqual({ family: `Direct${v}`, version: String(v) });
    }
    const old = await get(`Patient/${id}/_history/2`);
    expect({ status: old.status, family: old.body.name[0].family, version: old.body.meta.versionId }).toEqual({ status: 200, family: 'Direct2', version: '2' });
    expect((await get(`Patient/${id}/_history/9`)).status).toBe(404);
    expect((await get(`Patient/no-such-patient`)).status).toBe(404);
    expect((await get(`Medication/never-written`)).status).toBe(404); // a type with no table yet
    expect((await http('DELETE', `${srv.base}/Patient/${id}`)).status).toBe(200);
    expect((await get(`Patient/${id}`)).status).toBe(410);
    expect((await get(`Patient/${id}/_history/5`)).status).toBe(410);
    expect((await get(`Patient/${id}/_history/4`)).body.name[0].family).toBe('Direct4');
    if (sqlReads) expect(readFinds).toEqual([]);
    else expect(readFinds.length).toBeGreaterThan(0);
  });
});
