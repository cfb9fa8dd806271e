/**
 * read and vread served from the resource cache (Redis, shared by the processes), filled on write and on a miss: a read after a successful
 * write, from any process, never returns an older version, even with concurrent writers and readers filling
 * the cache meanwhile; cached reads still go through the caller's access checks; without Redis the same rule
 * holds inside one process.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { http, startInstancePair, startTestServer, type InstancePair, type TestServer } from './support/server.js';
import { userToken } from './support/browser.js';

let pair: InstancePair;
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  pair = await startInstancePair({ RESOURCE_CACHE_SECONDS: '300' });
  ({ a, b } = pair);
}, 60_000);
afterAll(async () => {
  await pair?.close();
});

const base = (s: TestServer) => `${s.url}/fhir`;
const patient = (id: string, n: number) => ({ resourceType: 'Patient', id, name: [{ family: `Writer${n}` }] });

describe('resource cache', () => {
  it('serves reads from the cache (a change behind the server\'s back is not seen until the next write)', async () => {
    expect((await http('PUT', `${base(a)}/Patient/cached`, { body: patient('cached', 0) })).status).toBe(201);
    expect((await http('GET', `${base(b)}/Patient/cached`)).body.name[0].family).toBe('Writer0'); // fills the shared cache
    const col = a.running.mongo.db.collection('fhir_Patient');
    const doc = (await col.findOne({ _id: 'Patient/cached' } as never)) as unknown as { json: string };
    await col.updateOne({ _id: 'Patient/cached' } as never, { $set: { json: doc.json.replace('Writer0', 'Tampered') } });
    expect((await http('GET', `${base(a)}/Patient/cached`)).body.name[0].family).toBe('Writer0'); // from the cache, on the other instance too
    expect((await http('PUT', `${base(b)}/Patient/cached`, { body: patient('cached', 1) })).status).toBe(200);
    const after = await http('GET', `${base(a)}/Patient/cached`);
    expect({ family: after.body.name[0].family, version: after.body.meta.versionId }).toEqual({ family: 'Writer1', version: '2' });
    // vread of the new version, and of the old one, from either instance.
    expect((await http('GET', `${base(b)}/Patient/cached/_history/2`)).body.name[0].family).toBe('Writer1');
    expect((await http('GET', `${base(a)}/Patient/cached/_history/1`)).body.meta.versionId).toBe('1');
    // A deletion is seen at once too.
    expect((await http('DELETE', `${base(a)}/Patient/cached`)).status).toBe(200);
    expect((await http('GET', `${base(b)}/Patient/cached`)).status).toBe(410);
  });

  it('fills the cache on write: the version a write or a committed transaction made current is served without a database read', async () => {
    const col = a.running.mongo.db.collection('fhir_Patient');
    const tamper = async (id: string, from: string) => {
      const doc = (await col.findOne({ _id: `Patient/${id}` } as never)) as unknown as { json: string };
      await col.updateOne({ _id: `Patient/${id}` } as never, { $set: { json: doc.json.replace(from, 'Tampered') } });
    };
    const id = `onwrite-${randomBytes(3).toString('hex')}`;
    expect((await http('PUT', `${base(a)}/Patient/${id}`, { body: patient(id, 0) })).status).toBe(201);
    await tamper(id, 'Writer0');
    expect((await http('GET', `${base(b)}/Patient/${id}`)).body.name[0].family).toBe('Writer0'); // never read from the database
    expect((await http('PUT', `${base(b)}/Patient/${id}`, { body: patient(id, 1) })).status).toBe(200);
    await tamper(id, 'Writer1');
    const second = await http('GET', `${base(a)}/Patient/${id}`);
    expect({ family: second.body.name[0].family, version: second.body.meta.versionId }).toEqual({ family: 'Writer1', version: '2' });

    const tx = await http('POST', base(a), { body: { resourceType: 'Bundle', type: 'transaction', entry: [
      { resource: patient(`${id}-tx`, 7), request: { method: 'PUT', url: `Patient/${id}-tx` } },
    ] } });
    expect(tx.status).toBe(200);
    await tamper(`${id}-tx`, 'Writer7');
    expect((await http('GET', `${base(b)}/Patient/${id}-tx`)).body.name[0].family).toBe('Writer7');

    // A bulk load (a unit of work of more than 100 versions) only invalidates: its versions are read from the database.
    const bulk = await http('POST', base(a), { body: { resourceType: 'Bundle', type: 'transaction', entry: Array.from({ length: 101 }, (_, i) => (
      { resource: patient(`${id}-bulk${i}`, 3), request: { method: 'PUT', url: `Patient/${id}-bulk${i}` } })) } });
    expect(bulk.status).toBe(200);
    await tamper(`${id}-bulk7`, 'Writer3');
    expect((await http('GET', `${base(b)}/Patient/${id}-bulk7`)).body.name[0].family).toBe('Tampered');

    // A transaction that fails is rolled back and leaves nothing in the cache: its create is not found.
    const failed = await http('POST', base(a), { body: { resourceType: 'Bundle', type: 'transaction', entry: [
      { resource: patient(`${id}-rb`, 8), request: { method: 'PUT', url: `Patient/${id}-rb` } },
      { resource: patient(`${id}-tx`, 9), request: { method: 'PUT', url: `Patient/${id}-tx`, ifMatch: 'W/"99"' } },
    ] } });
    expect(failed.status).toBe(412);
    expect((await http('GET', `${base(b)}/Patient/${id}-rb`)).status).toBe(404);
    expect((await http('GET', `${base(a)}/Patient/${id}-tx`)).body.meta.versionId).toBe('1');
  });

  it('a read after a successful write never returns an older version, from either instance, with concurrent writers and readers', async () => {
    expect((await http('PUT', `${base(a)}/Patient/race`, { body: patient('race', 0) })).status).toBe(201);
    let stop = false;
    // Readers keep filling the cache from both instances while the writers work.
    const readers = [a, b, a, b].map(async (s) => {
      while (!stop) await http('GET', `${base(s)}/Patient/race`);
    });
    const stale: string[] = [];
    const writer = async (via: TestServer, other: TestServer, tag: string) => {
      for (let i = 0; i < 15; i++) {
        const w = await http('PUT', `${base(via)}/Patient/race`, { body: patient('race', i) });
        expect(w.status).toBe(200);
        const written = Number(w.body.meta.versionId);
        for (const s of [via, other]) {
          const r = await http('GET', `${base(s)}/Patient/race`);
          if (Number(r.body.meta.versionId) < written) stale.push(`${tag}: wrote v${written}, then read v${r.body.meta.versionId}`);
        }
      }
    };
    await Promise.all([writer(a, b, 'A'), writer(b, a, 'B')]);
    stop = true;
    await Promise.all(readers);
    expect(stale).toEqual([]);
    const last = (await a.running.mongo.db.collection('fhir_Patient').findOne({ _id: 'Patient/race' } as never)) as unknown as { v: number };
    expect((await http('GET', `${base(b)}/Patient/race`)).body.meta.versionId).toBe(String(last.v));
  });

  it('cached reads still check access: another patient\'s cached record stays out of reach', async () => {
    const reg = async (given: string) =>
      (await http('POST', `${a.url}/auth/register`, { body: { email: `${given}@rc.example`, password: 'Blue-Harbor-72!', givenName: given, familyName: 'Cache' }, headers: { 'content-type': 'application/json' }, token: false })).body.fhirUser as string;
    const carol = await reg('carol');
    const dave = await reg('dave');
    expect((await http('GET', `${base(a)}/${dave}`)).status).toBe(200); // cached by a system read
    const t = (await userToken(a.running, 'carol@rc.example', 'Blue-Harbor-72!', 'launch/patient patient/*.rs')).access_token;
    expect((await http('GET', `${base(b)}/${carol}`, { token: t })).status).toBe(200);
    expect((await http('GET', `${base(b)}/${dave}`, { token: t })).status).toBe(404);
  });
});

describe('resource cache without Redis', () => {
  let solo: TestServer;
  beforeAll(async () => {
    solo = await startTestServer({ REDIS_URL: '', RESOURCE_CACHE_SECONDS: '300' }, { single: true });
  });
  afterAll(async () => {
    await solo?.close();
  });

  it('keeps the same rule inside one process', async () => {
    expect((await http('PUT', `${solo.base}/Patient/solo`, { body: patient('solo', 0) })).status).toBe(201);
    const readers = Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 20; i++) await http('GET', `${solo.base}/Patient/solo`);
    });
    for (let i = 1; i <= 10; i++) {
      const w = await http('PUT', `${solo.base}/Patient/solo`, { body: patient('solo', i) });
      expect(Number((await http('GET', `${solo.base}/Patient/solo`)).body.meta.versionId)).toBeGreaterThanOrEqual(Number(w.body.meta.versionId));
    }
    await Promise.all(readers);
  });
});

describe('the cache protocol', () => {
  const v = (n: number) => ({ resourceType: 'Patient', id: 'p', versionId: String(n), lastUpdated: new Date().toISOString(), deleted: false, json: `{"v":${n}}`, method: 'PUT' as const });
  const caches = async () => {
    const { Redis } = await import('ioredis');
    const { RedisResourceCache, InProcessResourceCache } = await import('../src/infra/resource-cache.js');
    const { createLogger } = await import('../src/infra/logger.js');
    const out: [string, import('../src/fhir/storage/resource-cache.js').ResourceCache, () => Promise<void>][] = [['in-process', new InProcessResourceCache(60_000), async () => undefined]];
    if (process.env.REDIS_URL) {
      const redis = new Redis(process.env.REDIS_URL);
      await new Promise((r) => redis.once('ready', r));
      out.push(['redis', new RedisResourceCache(redis, `t_rc_${randomBytes(4).toString('hex')}`, 60_000, createLogger('silent')), async () => void (await redis.quit())]);
    }
    return out;
  };

  it('a slow reader cannot put back a version that a write replaced after its lookup', async () => {
    const all = await caches();
    try {
      await protocolChecks(all);
    } finally {
      for (const [, , close] of all) await close(); // also when a check fails: an open Redis connection keeps jest alive
    }
  });

  async function protocolChecks(all: Awaited<ReturnType<typeof caches>>) {
    for (const [name, cache] of all) {
      const first = await cache.lookup('Patient/p');
      expect({ name, hit: 'hit' in first }).toEqual({ name, hit: false });
      // The reader read v1 from the database; meanwhile a writer committed v2 and invalidated.
      await cache.invalidate(['Patient/p']);
      await cache.fill('Patient/p', (first as { ticket: string }).ticket, v(1));
      expect({ name, after: 'hit' in (await cache.lookup('Patient/p')) }).toEqual({ name, after: false });
      // A reader that looked up after the write fills, and is served.
      const second = (await cache.lookup('Patient/p')) as { ticket: string };
      await cache.fill('Patient/p', second.ticket, v(2));
      const hit = await cache.lookup('Patient/p');
      expect({ name, version: 'hit' in hit ? hit.hit.versionId : undefined }).toEqual({ name, version: '2' });
      // And an older fill never replaces a newer entry.
      await cache.fill('Patient/p', second.ticket, v(1));
      const still = await cache.lookup('Patient/p');
      expect({ name, version: 'hit' in still ? still.hit.versionId : undefined }).toEqual({ name, version: '2' });
      const served = async () => {
        const r = await cache.lookup('Patient/p');
        return 'hit' in r ? r.hit.versionId : undefined;
      };
      // Filled on write: the version a write made current is served next.
      await cache.invalidate(['Patient/p', 'Patient/p/4'], new Map([['Patient/p', v(4)]]));
      expect({ name, onWrite: await served() }).toEqual({ name, onWrite: '4' });
      // Two processes' notifications arriving out of order: v3's, late, does not replace v4.
      await cache.invalidate(['Patient/p'], new Map([['Patient/p', v(3)]]));
      expect({ name, late: await served() }).toEqual({ name, late: '4' });
      // Nor does it replace what a reader filled after v5 committed, even once that entry was dropped and refilled.
      const ticket = (await (async () => { await cache.invalidate(['Patient/p']); return cache.lookup('Patient/p'); })()) as { ticket: string };
      await cache.fill('Patient/p', ticket.ticket, v(5));
      await cache.invalidate(['Patient/p'], new Map([['Patient/p', v(5)]]));
      await cache.invalidate(['Patient/p'], new Map([['Patient/p', v(4)]]));
      expect({ name, afterFill: await served() }).toEqual({ name, afterFill: '5' });
      // A reader holding a ticket from before a write cannot fill over it; an invalidation without a version drops the entry.
      const stale = (await (async () => { await cache.invalidate(['Patient/p']); return cache.lookup('Patient/p'); })()) as { ticket: string };
      await cache.invalidate(['Patient/p'], new Map([['Patient/p', v(6)]]));
      await cache.fill('Patient/p', stale.ticket, v(5));
      expect({ name, filledOver: await served() }).toEqual({ name, filledOver: '6' });
      await cache.invalidate(['Patient/p']);
      expect({ name, dropped: await served() }).toEqual({ name, dropped: undefined });
    }
  }
});
