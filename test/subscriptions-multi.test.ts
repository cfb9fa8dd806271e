/**
 * Subscriptions across server processes: two instances on one database deliver every event of every
 * subscription exactly once and in order (one delivery lease per subscription, one fan-out at a time); a
 * subscription whose endpoint keeps failing goes to `error` with the last error once the retry period is over;
 * and a server that is restarted resumes delivery where the previous one stopped.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { authHeaders, http, startInstancePair, startTestServer, type InstancePair, type TestServer } from './support/server.js';
import { waitFor as waitUntil } from './support/wait.js';

interface Hit { url: string; headers: IncomingHttpHeaders }

async function receiver(status = 200) {
  const hits: Hit[] = [];
  let server: Server;
  let port = 0;
  const up = () => new Promise<void>((resolve) => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (status < 300) hits.push({ url: req.url!, headers: req.headers });
        res.writeHead(status).end();
      });
    });
    server.listen(port, '127.0.0.1', () => {
      port = (server.address() as AddressInfo).port;
      resolve();
    });
  });
  await up();
  return { hits, url: () => `http://127.0.0.1:${port}`, up, down: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> => waitUntil(what, fn, timeoutMs);

const ENV = {
  SUBSCRIPTION_ENDPOINT_ALLOWLIST: '127.0.0.1', SUBSCRIPTION_POLL_MS: '100', SUBSCRIPTION_BACKOFF_BASE_MS: '200', SUBSCRIPTION_BACKOFF_MAX_MS: '1000',
  SUBSCRIPTION_TIMEOUT_SECONDS: '1', SUBSCRIPTION_LEASE_MS: '6000', SUBSCRIPTION_PROPAGATION_MS: '1000',
};
const obs = (code: string) => ({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code }] }, subject: { reference: 'Patient/p1' } });
const numbers = (hits: Hit[], sub: string) => hits.filter((h) => h.headers['x-medivoy-subscription'] === `Subscription/${sub}` && h.headers['x-medivoy-notification-type'] !== 'handshake').map((h) => Number(h.headers['x-medivoy-event-number']));
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** A subscription notifies about changes from its `since` on (once every process knows of it; README). */
async function untilActiveFor(sub: { extension?: { url: string; valueString?: string }[] }): Promise<void> {
  const owner = sub.extension?.find((e) => e.url.endsWith('/subscription-owner'));
  const since = Date.parse(JSON.parse(owner!.valueString!).since);
  await waitFor('the subscription to take effect', () => Date.now() > since);
}

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

describe('restart', () => {
  it('events numbered before a restart are delivered by the next server, in order', async () => {
    const dbName = `t_${randomBytes(6).toString('hex')}`;
    const rx = await receiver();
    cleanup.push(() => rx.down());
    const first: TestServer = await startTestServer({ ...ENV, SUBSCRIPTION_RETRY_HOURS: '1' }, { dbName, keepDb: true, single: true });
    let second: TestServer | undefined;
    cleanup.push(async () => {
      await second?.running.mongo.db.dropDatabase();
      await second?.close();
    });
    await rx.down();
    const created = (await http('POST', `${first.base}/Subscription`, { body: { resourceType: 'Subscription', status: 'requested', reason: 'r', criteria: 'Observation?code=http://loinc.org|r-1', channel: { type: 'rest-hook', endpoint: `${rx.url()}/restart` } } })).body;
    await untilActiveFor(created);
    const sub = created.id as string;
    for (let i = 0; i < 5; i++) await http('POST', `${first.base}/Observation`, { body: obs('r-1') });
    await waitFor('five events numbered', async () => {
      const st = await http('GET', `${first.base}/Subscription/${sub}/$status`);
      return st.body.entry[0].resource.parameter.find((p: any) => p.name === 'events-since-subscription-start').valueString === '5';
    });
    await first.close();
    second = await startTestServer({ ...ENV, SUBSCRIPTION_RETRY_HOURS: '1' }, { dbName, keepDb: true, single: true });
    await rx.up();
    await waitFor('all five after the restart', () => numbers(rx.hits, sub).length >= 5 && true);
    expect(numbers(rx.hits, sub)).toEqual(range(5));
  }, 90_000);
});

describe('two server processes', () => {
  let pair: InstancePair;
  let headers: Record<string, string>;

  it('deliver each event of each subscription once, in order', async () => {
    pair = await startInstancePair({ ...ENV, SUBSCRIPTION_RETRY_HOURS: '0.002' });
    cleanup.push(() => pair.close());
    headers = await authHeaders(pair.a.url);
    const base = `${pair.url}/fhir`;
    const rx = await receiver();
    cleanup.push(() => rx.down());
    const subs: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await http('POST', `${base}/Subscription`, { headers, body: { resourceType: 'Subscription', status: 'requested', reason: 'pair', criteria: 'Observation?code=http://loinc.org|pair', channel: { type: 'rest-hook', endpoint: `${rx.url()}/pair${i}` } } });
      expect(res.status).toBe(201);
      subs.push(res.body.id);
      await untilActiveFor(res.body);
    }
    const N = 15;
    await Promise.all(range(N).map(() => http('POST', `${base}/Observation`, { headers, body: obs('pair') })));
    await waitFor('every event of every subscription', () => subs.every((s) => numbers(rx.hits, s).length >= N) && true, 90_000);
    for (const s of subs) expect(numbers(rx.hits, s)).toEqual(range(N));
    // Exactly once: the two processes together sent as many notifications as there were events.
    expect(pair.a.running.subscriptions.delivery.sent + pair.b.running.subscriptions.delivery.sent).toBe(4 * N);
  }, 120_000);

  it('a subscription whose endpoint keeps failing goes to error with the last error after the retry period', async () => {
    const base = `${pair.url}/fhir`;
    const failing = await receiver(500);
    cleanup.push(() => failing.down());
    const created = (await http('POST', `${base}/Subscription`, { headers, body: { resourceType: 'Subscription', status: 'requested', reason: 'fail', criteria: 'Observation?code=http://loinc.org|fail', channel: { type: 'rest-hook', endpoint: `${failing.url()}/x` } } })).body;
    await untilActiveFor(created);
    const sub = created.id as string;
    await http('POST', `${base}/Observation`, { headers, body: obs('fail') });
    const errored = await waitFor('status error', async () => {
      const s = await http('GET', `${base}/Subscription/${sub}`, { headers });
      return s.body.status === 'error' && s.body;
    }, 60_000);
    expect(errored.error).toContain('HTTP 500');
    const st = await http('GET', `${base}/Subscription/${sub}/$status`, { headers });
    const p = st.body.entry[0].resource.parameter;
    expect(p.find((x: any) => x.name === 'status').valueCode).toBe('error');
    expect(p.find((x: any) => x.name === 'error').valueCodeableConcept.text).toContain('HTTP 500');
    // Set active again by its owner: delivery resumes from the undelivered event.
    const ok = await receiver();
    cleanup.push(() => ok.down());
    const again = await http('PUT', `${base}/Subscription/${sub}`, { headers, body: { ...errored, status: 'requested', channel: { type: 'rest-hook', endpoint: `${ok.url()}/x` } } });
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('active');
    expect(again.body.error).toBeUndefined();
    await waitFor('the event after reactivation', () => numbers(ok.hits, sub).length >= 1 && true);
    expect(numbers(ok.hits, sub)).toEqual([1]);
  }, 90_000);
});
