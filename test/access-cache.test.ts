/**
 * Who a token belongs to is cached per process (ACCESS_CACHE_SECONDS) and a revocation is broadcast through
 * Redis: two server instances on one database, a token used on both, revoked on one, refused on the other
 * within a second. Access checks still run on every request (a cached caller only skips the token lookup).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startInstancePair, type InstancePair, type TestServer } from './support/server.js';
import { userToken } from './support/browser.js';

const PASSWORD = 'Blue-Harbor-72!';
let pair: InstancePair;
let a: TestServer;
let b: TestServer;
let alice: string;
let bob: string;

beforeAll(async () => {
  pair = await startInstancePair({ ACCESS_CACHE_SECONDS: '30' });
  ({ a, b } = pair);
  const reg = async (given: string) =>
    (await http('POST', `${a.url}/auth/register`, { body: { email: `${given}@cache.example`, password: PASSWORD, givenName: given, familyName: 'Cache' }, headers: { 'content-type': 'application/json' }, token: false })).body.fhirUser as string;
  alice = await reg('alice');
  bob = await reg('bob');
}, 60_000);
afterAll(async () => {
  await pair?.close();
});

const read = (srv: TestServer, ref: string, token: string) => http('GET', `${srv.url}/fhir/${ref}`, { token });
const token = async (who: string) => (await userToken(a.running, `${who}@cache.example`, PASSWORD, 'launch/patient patient/*.rs')).access_token;

describe('access context cache', () => {
  it('serves a known token without looking it up again, and still checks access on every request', async () => {
    const t = await token('alice');
    expect((await read(b, alice, t)).status).toBe(200);
    // Deleted behind the server's back: the cached caller stays valid for ACCESS_CACHE_SECONDS (documented)…
    await a.running.mongo.db.collection('oidc_AccessToken').deleteOne({ _id: t } as never);
    expect((await read(b, alice, t)).status).toBe(200);
    // …but access is still checked per request: another patient's record stays out of reach.
    expect((await read(b, bob, t)).status).toBe(404);
    // A process that had not seen the token looks it up, and finds nothing.
    expect((await read(a, alice, t)).status).toBe(401);
  });

  it('a token revoked on one instance stops working on the other within a second', async () => {
    const t = await token('bob');
    expect((await read(a, bob, t)).status).toBe(200);
    expect((await read(b, bob, t)).status).toBe(200); // cached on both now
    const clientId = (await a.running.mongo.db.collection('oidc_AccessToken').findOne({ _id: t } as never) as { payload: string } | null)?.payload;
    expect(clientId).toBeDefined();
    const revoke = await fetch(`${a.url}/auth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: t, client_id: JSON.parse(clientId!).clientId }) });
    expect(revoke.status).toBe(200);
    const started = Date.now();
    let status = 200;
    while (Date.now() - started < 1000 && status === 200) {
      status = (await read(b, bob, t)).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(401);
    expect((await read(a, bob, t)).status).toBe(401);
  });
});
