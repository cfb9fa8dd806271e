import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';

/**
 * The repository's side writes (fhir/storage/side-writes.ts): what a hook returns for a version is stored with
 * it, and is gone again whenever the version is not stored. A test hook records every version it sees in a
 * collection of its own, and refuses Patients named "Refused".
 */
let srv: TestServer;
const COLLECTION = 'test_side_writes';
beforeAll(async () => {
  // The hook is added at run time to this one process (a deployment registers it in every process at start), so
  // the test talks to that process directly, also under TEST_SERVERS=2.
  srv = await startTestServer({ RATING_SEARCH_PARAMETER: 'false' }, { single: true });
  srv.running.sideWrites.add(({ version, previous, inUnitOfWork }) => {
    if (version.json?.includes('"family":"Refused"')) throw new Error('refused by the test hook');
    return [{ collection: COLLECTION, doc: { _id: `${version.resourceType}/${version.id}/${version.versionId}`, previous: previous?.versionId ?? null, inUnitOfWork, deleted: version.deleted } }];
  });
});
afterAll(async () => {
  await srv?.close();
});

// (`_w`/`_wt`, each write attempt's token and time, are left out: side-write-store.ts)
const sides = () => srv.running.mongo.db.collection(COLLECTION).find({}, { projection: { _w: 0, _wt: 0 } }).sort({ _id: 1 }).toArray();
const patient = (family: string) => ({ resourceType: 'Patient', name: [{ family }] });
const postBundle = (type: 'batch' | 'transaction', entry: unknown[]) => http('POST', srv.base, { body: { resourceType: 'Bundle', type, entry } });

describe('side writes', () => {
  it('are stored with every version of create, update and delete, and name the version they follow', async () => {
    const created = await http('POST', `${srv.base}/Patient`, { body: patient('Side') });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect((await http('PUT', `${srv.base}/Patient/${id}`, { body: { ...patient('Side2'), id } })).status).toBe(200);
    expect((await http('DELETE', `${srv.base}/Patient/${id}`)).status).toBe(200);
    const mine = (await sides()).filter((d) => String(d._id).startsWith(`Patient/${id}/`));
    expect(mine).toEqual([
      { _id: `Patient/${id}/1`, previous: null, inUnitOfWork: false, deleted: false },
      { _id: `Patient/${id}/2`, previous: '1', inUnitOfWork: false, deleted: false },
      { _id: `Patient/${id}/3`, previous: '2', inUnitOfWork: false, deleted: true },
    ]);
  });

  it('concurrent writers of one resource, whose side writes share their version-keyed ids, all succeed: one side write per version', async () => {
    const id = (await http('POST', `${srv.base}/Patient`, { body: patient('Racing') })).body.id;
    const N = 8;
    const results = await Promise.all(Array.from({ length: N }, (_, i) => http('PUT', `${srv.base}/Patient/${id}`, { body: { ...patient(`Racing${i}`), id } })));
    expect(results.map((r) => r.status)).toEqual(Array(N).fill(200));
    const mine = (await sides()).filter((d) => String(d._id).startsWith(`Patient/${id}/`));
    // Every stored version has its side write, naming the version it followed; no attempt that lost left one.
    expect(mine.map((d) => d._id).sort()).toEqual(Array.from({ length: N + 1 }, (_, i) => `Patient/${id}/${i + 1}`).sort());
    for (const d of mine) expect(d.previous).toBe(String(d._id).endsWith('/1') ? null : String(Number(String(d._id).split('/').pop()) - 1));
  });

  it('a leftover of an attempt whose version was never written (its removal failed) holds the version only briefly', async () => {
    const id = (await http('POST', `${srv.base}/Patient`, { body: patient('Leftover') })).body.id;
    const col = srv.running.mongo.db.collection<{ _id: string }>(COLLECTION);
    // Younger than 30 s: it may be a writer still settling, so the write waits, then answers 503 + Retry-After.
    await col.insertOne({ _id: `Patient/${id}/2`, previous: '1', _w: 'other-attempt', _wt: new Date() } as never);
    const busy = await http('PUT', `${srv.base}/Patient/${id}`, { body: { ...patient('Leftover2'), id } });
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(busy.body.resourceType).toBe('OperationOutcome');
    // Older: a leftover; it is removed and the write goes through, with its own side write for version 2.
    await col.updateOne({ _id: `Patient/${id}/2` }, { $set: { _wt: new Date(Date.now() - 60_000) } });
    const ok = await http('PUT', `${srv.base}/Patient/${id}`, { body: { ...patient('Leftover3'), id } });
    expect(ok.status).toBe(200);
    expect(ok.body.meta.versionId).toBe('2');
    expect(await col.findOne({ _id: `Patient/${id}/2` })).toMatchObject({ previous: '1', inUnitOfWork: false });
    expect((await col.findOne({ _id: `Patient/${id}/2` }) as any)._w).not.toBe('other-attempt');
  });

  it('a hook that fails fails the write: nothing is stored', async () => {
    const before = await sides();
    const res = await http('POST', `${srv.base}/Patient`, { body: patient('Refused') });
    expect(res.status).toBe(500);
    expect(res.body.resourceType).toBe('OperationOutcome');
    const search = await http('GET', `${srv.base}/Patient?family=Refused`);
    expect(search.body.entry ?? []).toEqual([]);
    expect(await sides()).toEqual(before);
  });

  it('a transaction that fails leaves no side write behind; one that succeeds leaves one per entry', async () => {
    const before = await sides();
    const failed = await postBundle('transaction', [
      { resource: patient('TxOne'), request: { method: 'POST', url: 'Patient' } },
      { resource: patient('Refused'), request: { method: 'POST', url: 'Patient' } },
    ]);
    expect(failed.status).toBe(500);
    expect(await sides()).toEqual(before);
    expect((await http('GET', `${srv.base}/Patient?family=TxOne`)).body.entry ?? []).toEqual([]);

    const ok = await postBundle('transaction', [
      { resource: patient('TxA'), request: { method: 'POST', url: 'Patient' } },
      { resource: patient('TxB'), request: { method: 'POST', url: 'Patient' } },
    ]);
    expect(ok.status).toBe(200);
    const ids = ok.body.entry.map((e: any) => /Patient\/([^/]+)\/_history/.exec(e.response.location)![1]);
    const added = (await sides()).filter((d) => !before.some((b) => b._id === d._id));
    expect(added.map((d) => d._id).sort()).toEqual(ids.map((id: string) => `Patient/${id}/1`).sort());
    expect(added.every((d) => d.inUnitOfWork === true)).toBe(true);
  });

  it('a failure after some entries of a transaction were written removes their side writes too', async () => {
    const existing = await http('POST', `${srv.base}/Patient`, { body: patient('Existing') });
    const id = existing.body.id;
    const before = await sides();
    const failed = await postBundle('transaction', [
      { resource: { ...patient('Updated'), id }, request: { method: 'PUT', url: `Patient/${id}` } },
      { resource: { ...patient('Refused'), id: 'refused-1' }, request: { method: 'PUT', url: 'Patient/refused-1' } },
    ]);
    expect(failed.status).toBe(500);
    expect(await sides()).toEqual(before);
    expect((await http('GET', `${srv.base}/Patient/${id}`)).body.name[0].family).toBe('Existing');
  });
});
