/**
 * Subscriptions over HTTP against a real local receiver (node:http) and SMTP server: R4 criteria subscriptions
 * (rest-hook with headers, with and without payload; email), Backport topic subscriptions (notification Bundles,
 * $status, $events), delivery through a receiver that is down, answers 500, redirects or is slow (everything
 * arrives, in order), nothing outside the owner's scopes, nothing from a rolled-back transaction, and bad input.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { http, startTestServer, type TestServer } from './support/server.js';
import { backendToken, registerBackendClient } from './support/auth.js';
import { startSmtp } from './support/smtp.js';
import { userToken } from './support/browser.js';
import { searchIndexer } from '../src/server.js';
import { SearchParameterRegistry } from '../src/fhir/search/parameters.js';
import { compileCriteria, indexed } from '../src/subscriptions/criteria.js';
import { waitFor as waitUntil } from './support/wait.js';

interface Hit { method: string; url: string; headers: IncomingHttpHeaders; body: string }
type Mode = 'ok' | '500' | 'redirect' | 'slow';

/** A webhook receiver: records what it accepted (2xx) and answers as `mode` says. */
async function startReceiver(port = 0) {
  const hits: Hit[] = [];
  const refused: Hit[] = [];
  const state = { mode: 'ok' as Mode, slowOnce: false };
  let server: Server;
  const listen = (p: number) => new Promise<number>((resolve) => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const hit = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
        if (state.mode === '500') return (refused.push(hit), res.writeHead(500).end('no'));
        if (state.mode === 'redirect') return (refused.push(hit), res.writeHead(302, { location: 'http://127.0.0.1:9/elsewhere' }).end());
        if (state.mode === 'slow' || state.slowOnce) {
          state.slowOnce = false;
          refused.push(hit); // answered after the server's timeout: the server retries it
          setTimeout(() => res.writeHead(200).end(), 3_500).unref();
          return;
        }
        hits.push(hit);
        res.writeHead(200).end();
      });
    });
    server.listen(p, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
  const actualPort = await listen(port);
  return {
    hits, refused, state, port: actualPort, url: `http://127.0.0.1:${actualPort}`,
    down: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
    up: () => listen(actualPort),
  };
}
type Receiver = Awaited<ReturnType<typeof startReceiver>>;

const waitFor = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> => waitUntil(what, fn, timeoutMs);

const LOINC = 'http://loinc.org';
const obs = (code: string, patient: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOINC, code }] }, subject: { reference: `Patient/${patient}` }, ...extra,
});
const BP = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
const TOPIC = 'http://medivoy.example/fhir/SubscriptionTopic';

let srv: TestServer;
let rx: Receiver;
let smtp: Awaited<ReturnType<typeof startSmtp>>;
const eventNumbers = (hits: Hit[], sub: string) => hits.filter((h) => h.headers['x-medivoy-subscription'] === `Subscription/${sub}` && h.headers['x-medivoy-event-number']).map((h) => Number(h.headers['x-medivoy-event-number']));
/** De-duplicated by event number, as a receiver does: the first copy of each. */
const distinct = (ns: number[]) => ns.filter((n, i) => ns.indexOf(n) === i);

async function subscribe(body: Record<string, unknown>, token?: string): Promise<string> {
  const res = await http('POST', `${srv.base}/Subscription`, { body: { resourceType: 'Subscription', status: 'requested', reason: 'test', ...body }, ...(token ? { token } : {}) });
  if (res.status !== 201) throw new Error(`subscription not created: ${res.status} ${res.text}`);
  expect(res.body.status).toBe('active');
  await untilActiveFor(res.body);
  return res.body.id as string;
}
/** A subscription notifies about changes from its `since` on (once every process knows of it; README). */
async function untilActiveFor(sub: { extension?: { url: string; valueString?: string }[] }): Promise<void> {
  const owner = sub.extension?.find((e) => e.url.endsWith('/subscription-owner'));
  const since = Date.parse(JSON.parse(owner!.valueString!).since);
  await waitFor('the subscription to take effect', () => Date.now() > since);
}
const restHook = (path: string, extra: Record<string, unknown> = {}) => ({ type: 'rest-hook', endpoint: `${rx.url}${path}`, ...extra });

beforeAll(async () => {
  rx = await startReceiver();
  smtp = await startSmtp();
  srv = await startTestServer({
    SUBSCRIPTION_ENDPOINT_ALLOWLIST: '127.0.0.1', SUBSCRIPTION_POLL_MS: '100', SUBSCRIPTION_BACKOFF_BASE_MS: '200', SUBSCRIPTION_BACKOFF_MAX_MS: '1000',
    SUBSCRIPTION_TIMEOUT_SECONDS: '2', SUBSCRIPTION_LEASE_MS: '10000', SUBSCRIPTION_RETRY_HOURS: '1', SUBSCRIPTION_PROPAGATION_MS: '1000', SMTP_URL: smtp.url,
  });
  for (const id of ['pa', 'pb']) await http('PUT', `${srv.base}/Patient/${id}`, { body: { resourceType: 'Patient', id, name: [{ family: id }] } });
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await rx?.down().catch(() => undefined);
  await smtp?.close();
});

describe('criteria matcher', () => {
  it('matches in memory exactly what the search engine finds for the same criteria', async () => {
    const m = (code: string, date: string, value: number, unit: string, patient: string, status = 'final', text?: string) => ({
      resourceType: 'Observation', status, identifier: [{ system: 'urn:test', value: 'm' }],
      code: { coding: [{ system: code.startsWith('x') ? 'http://other.example' : LOINC, code }], ...(text ? { text } : {}) },
      subject: { reference: `Patient/${patient}` }, effectiveDateTime: date,
      valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit },
    });
    const made = [
      m('m-1', '2024-01-15', 3, 'mg', 'pa', 'final', 'Hemoglobin'), m('m-1', '2024-02-20T10:00:00Z', 7, 'mg', 'pb'),
      m('m-2', '2024-01-31', 5, 'g', 'pa', 'amended'), m('x-3', '2023-12-01', 12, 'mg', 'pb', 'final', 'hemo A1c'), m('m-2', '2024-03-01', 0.5, 'mg', 'pa'),
    ];
    const ids: string[] = [];
    for (const r of made) ids.push((await http('POST', `${srv.base}/Observation`, { body: r })).body.id);
    const all = (await http('GET', `${srv.base}/Observation?identifier=urn:test|m&_count=100`)).body.entry.map((e: any) => e.resource);
    expect(all).toHaveLength(made.length);
    const registry = new SearchParameterRegistry();
    const criteria = [
      'code=http://loinc.org|m-1', 'code=m-1,m-2', 'code=http://loinc.org|', 'code:not=m-1', 'status=final', 'status:not=final',
      'date=ge2024-02-01', 'date=lt2024-02-01', 'date=2024-01', 'value-quantity=gt5', 'value-quantity=le5|http://unitsofmeasure.org|mg',
      'subject=Patient/pa', 'subject:Patient=pb', 'code:text=hemo', `_id=${ids[2]}`, 'code=m-1&subject=Patient/pb', 'date=ge2024-01-01&value-quantity=lt4',
    ];
    for (const c of criteria) {
      const found = (await http('GET', `${srv.base}/Observation?identifier=urn:test|m&${c}&_count=100`)).body;
      const expected = (found.entry ?? []).map((e: any) => e.resource.id).sort();
      const compiled = compileCriteria(registry, `Observation?${c}`);
      const matched = all.filter((r: any) => compiled.matches(indexed(searchIndexer, r.id, r))).map((r: any) => r.id).sort();
      expect([c, matched]).toEqual([c, expected]);
    }
    // The fixture is not trivial: the criteria split the five resources in different ways.
    expect(new Set(await Promise.all(criteria.map(async (c) => (await http('GET', `${srv.base}/Observation?identifier=urn:test|m&${c}&_summary=count`)).body.total)))).not.toEqual(new Set([made.length]));
  });
});

describe('R4 criteria subscriptions (rest-hook)', () => {
  it('PUTs the matching resource to [endpoint]/[type]/[id] with the channel headers, and nothing that does not match', async () => {
    const sub = await subscribe({ criteria: 'Observation?code=http://loinc.org|1111-1&subject=Patient/pa', channel: restHook('/full', { payload: 'application/fhir+json', header: ['Authorization: Bearer hook-secret', 'X-Tenant: t1'] }) });
    await http('POST', `${srv.base}/Observation`, { body: obs('1111-1', 'pb') }); // other patient
    await http('POST', `${srv.base}/Observation`, { body: obs('2222-2', 'pa') }); // other code
    const created = (await http('POST', `${srv.base}/Observation`, { body: obs('1111-1', 'pa') })).body;
    const hit = await waitFor('the notification', () => rx.hits.find((h) => h.headers['x-medivoy-subscription'] === `Subscription/${sub}`));
    expect(hit.method).toBe('PUT');
    expect(hit.url).toBe(`/full/Observation/${created.id}`);
    expect(hit.headers.authorization).toBe('Bearer hook-secret');
    expect(hit.headers['x-tenant']).toBe('t1');
    expect(hit.headers['content-type']).toBe('application/fhir+json');
    expect(hit.headers['x-medivoy-event-number']).toBe('1');
    expect(hit.headers['x-medivoy-event-id']).toBe(`${sub}-1`);
    expect(JSON.parse(hit.body)).toMatchObject({ resourceType: 'Observation', id: created.id, subject: { reference: 'Patient/pa' } });
    // An update that still matches notifies again (event 2); one that no longer matches does not.
    await http('PUT', `${srv.base}/Observation/${created.id}`, { body: { ...obs('1111-1', 'pa'), id: created.id, status: 'amended' } });
    await http('PUT', `${srv.base}/Observation/${created.id}`, { body: { ...obs('3333-3', 'pa'), id: created.id } });
    const marker = (await http('POST', `${srv.base}/Observation`, { body: obs('1111-1', 'pa') })).body;
    await waitFor('the marker', () => rx.hits.some((h) => h.url === `/full/Observation/${marker.id}`));
    expect(eventNumbers(rx.hits, sub)).toEqual([1, 2, 3]);
    expect(rx.hits.filter((h) => h.headers['x-medivoy-subscription'] === `Subscription/${sub}`).map((h) => JSON.parse(h.body).status)).toEqual(['final', 'amended', 'final']);
  });

  it('sends an empty POST when the subscription has no payload', async () => {
    const sub = await subscribe({ criteria: 'Observation?code=http://loinc.org|4444-4', channel: restHook('/empty') });
    await http('POST', `${srv.base}/Observation`, { body: obs('4444-4', 'pa') });
    const hit = await waitFor('the notification', () => rx.hits.find((h) => h.headers['x-medivoy-subscription'] === `Subscription/${sub}`));
    expect(hit.method).toBe('POST');
    expect(hit.url).toBe('/empty');
    expect(hit.body).toBe('');
    expect(hit.headers['x-medivoy-focus']).toBeUndefined();
  });

  it('never notifies about what the owner\'s token may not read', async () => {
    const scope = 'system/Subscription.cruds system/Observation.rs?subject=Patient/pa';
    const client = await registerBackendClient(srv.running, scope);
    const token = (await backendToken(srv.running, client, scope)).access_token;
    const sub = await subscribe({ criteria: 'Observation?code=http://loinc.org|5555-5', channel: restHook('/scoped', { payload: 'application/fhir+json' }) }, token);
    const hidden: string[] = [];
    for (let i = 0; i < 3; i++) hidden.push((await http('POST', `${srv.base}/Observation`, { body: obs('5555-5', 'pb') })).body.id);
    const visible = (await http('POST', `${srv.base}/Observation`, { body: obs('5555-5', 'pa') })).body.id;
    await waitFor('the visible one', () => rx.hits.some((h) => h.url === `/scoped/Observation/${visible}`));
    const seen = rx.hits.filter((h) => h.url.startsWith('/scoped/')).map((h) => JSON.parse(h.body));
    expect(seen.map((r) => r.id)).toEqual([visible]);
    expect(seen.every((r) => r.subject.reference === 'Patient/pa')).toBe(true);
    // $events replays only what exists for it: one event.
    const events = await http('GET', `${srv.base}/Subscription/${sub}/$events`, { token });
    expect(events.status).toBe(200);
    expect(events.body.entry[0].resource.parameter.find((p: any) => p.name === 'events-since-subscription-start').valueString).toBe('1');
    for (const id of hidden) expect(events.text).not.toContain(id);
  });

  it('keeps a Subscription (its channel headers may hold secrets) from users who do not own it', async () => {
    const sub = await subscribe({ criteria: 'Observation?code=http://loinc.org|own-1', channel: restHook('/own', { header: ['Authorization: Bearer receiver-secret'] }) });
    const reg = await http('POST', `${srv.url}/auth/register`, { body: { email: 'carol@subs.example', password: 'Blue-Harbor-72!', givenName: 'Carol', familyName: 'Test' }, headers: { 'content-type': 'application/json' }, token: false });
    expect(reg.status).toBeLessThan(300);
    const carol = (await userToken(srv.running, 'carol@subs.example', 'Blue-Harbor-72!', 'openid fhirUser user/Subscription.rs user/Observation.rs')).access_token;
    for (const path of [`Subscription/${sub}`, `Subscription/${sub}/_history/1`, `Subscription/${sub}/$status`, `Subscription/${sub}/$events`]) {
      const res = await http('GET', `${srv.base}/${path}`, { token: carol });
      expect([path, res.status]).toEqual([path, 404]);
      expect(res.text).not.toContain('receiver-secret');
    }
    const search = await http('GET', `${srv.base}/Subscription`, { token: carol });
    expect(search.status).toBe(403);
    expect(search.body.resourceType).toBe('OperationOutcome');
    expect((await http('GET', `${srv.base}/Subscription/${sub}`)).status).toBe(200); // system access sees it
  });

  it('sends nothing for changes after Subscription.end', async () => {
    const ended = await subscribe({ criteria: 'Observation?code=http://loinc.org|end-1', end: '2020-01-01T00:00:00Z', channel: restHook('/ended') });
    const open = await subscribe({ criteria: 'Observation?code=http://loinc.org|end-1', channel: restHook('/open') });
    await http('POST', `${srv.base}/Observation`, { body: obs('end-1', 'pa') });
    await waitFor('the open one', () => rx.hits.some((h) => h.headers['x-medivoy-subscription'] === `Subscription/${open}`));
    const st = await http('GET', `${srv.base}/Subscription/${ended}/$status`);
    expect(st.body.entry[0].resource.parameter.find((x: any) => x.name === 'events-since-subscription-start').valueString).toBe('0');
    expect(rx.hits.some((h) => h.url === '/ended')).toBe(false);
  });

  it('sends nothing for a change that was rolled back (a failed transaction Bundle)', async () => {
    const sub = await subscribe({ criteria: 'Observation?code=http://loinc.org|6666-6', channel: restHook('/tx') });
    const res = await http('POST', `${srv.base}`, { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: obs('6666-6', 'pa'), request: { method: 'POST', url: 'Observation' } },
        { resource: { resourceType: 'Observation', status: 'not-a-status', code: { text: 'x' } }, request: { method: 'POST', url: 'Observation' } },
      ] } });
    expect(res.status).toBeGreaterThanOrEqual(400);
    const after = (await http('POST', `${srv.base}/Observation`, { body: obs('6666-6', 'pa') })).body.id;
    await waitFor('the committed one', () => rx.hits.some((h) => h.headers['x-medivoy-subscription'] === `Subscription/${sub}`));
    const mine = rx.hits.filter((h) => h.headers['x-medivoy-subscription'] === `Subscription/${sub}`);
    expect(mine.map((h) => h.headers['x-medivoy-event-number'])).toEqual(['1']);
    const events = await http('GET', `${srv.base}/Subscription/${sub}/$events?content=id-only`);
    expect(events.body.entry.slice(1).map((e: any) => e.fullUrl.replace(/^.*\/fhir\//, ''))).toEqual([`Observation/${after}`]);
  });
});

describe('Backport topic-based subscriptions', () => {
  it('sends history Bundles whose first entry is a SubscriptionStatus, filtered by the filter criteria', async () => {
    const sub = await subscribe({
      criteria: `${TOPIC}/encounter`,
      _criteria: { extension: [{ url: `${BP}/backport-filter-criteria`, valueString: 'Encounter?subject=Patient/pa' }] },
      channel: restHook('/topic', { payload: 'application/fhir+json', _payload: { extension: [{ url: `${BP}/backport-payload-content`, valueCode: 'full-resource' }] } }),
    });
    await http('POST', `${srv.base}/Encounter`, { body: { resourceType: 'Encounter', status: 'planned', class: { code: 'AMB' }, subject: { reference: 'Patient/pb' } } });
    const enc = (await http('POST', `${srv.base}/Encounter`, { body: { resourceType: 'Encounter', status: 'planned', class: { code: 'AMB' }, subject: { reference: 'Patient/pa' } } })).body;
    await http('DELETE', `${srv.base}/Encounter/${enc.id}`);
    const topicHits = () => rx.hits.filter((h) => h.url === '/topic');
    await waitFor('a handshake and two notifications', () => topicHits().length >= 3 && true);
    // The Backport handshake comes first: a SubscriptionStatus of type handshake, no events.
    const [handshake, first, second] = topicHits().map((h) => JSON.parse(h.body));
    expect(topicHits()[0]!.headers['x-medivoy-notification-type']).toBe('handshake');
    const hs = handshake.entry[0].resource.parameter;
    expect(hs.find((x: any) => x.name === 'type').valueCode).toBe('handshake');
    expect(hs.find((x: any) => x.name === 'events-since-subscription-start').valueString).toBe('0');
    expect(handshake.entry).toHaveLength(1);
    expect(first.resourceType).toBe('Bundle');
    expect(first.type).toBe('history');
    const status = first.entry[0].resource;
    expect(status.resourceType).toBe('Parameters');
    const p = (name: string) => status.parameter.find((x: any) => x.name === name);
    expect(p('subscription').valueReference.reference).toMatch(new RegExp(`/Subscription/${sub}$`));
    expect(p('topic').valueCanonical).toBe(`${TOPIC}/encounter`);
    expect(p('type').valueCode).toBe('event-notification');
    expect(p('status').valueCode).toBe('active');
    expect(p('events-since-subscription-start').valueString).toBe('1');
    const ev = p('notification-event').part;
    expect(ev.find((x: any) => x.name === 'event-number').valueString).toBe('1');
    expect(ev.find((x: any) => x.name === 'focus').valueReference.reference).toMatch(new RegExp(`/Encounter/${enc.id}/_history/1$`));
    expect(first.entry[1].resource).toMatchObject({ resourceType: 'Encounter', id: enc.id });
    expect(first.entry[1].request).toEqual({ method: 'POST', url: `Encounter/${enc.id}` });
    // The deletion: event 2, no resource.
    expect(second.entry[1].request.method).toBe('DELETE');
    expect(second.entry[1].resource).toBeUndefined();

    const st = await http('GET', `${srv.base}/Subscription/${sub}/$status`);
    expect(st.status).toBe(200);
    expect(st.body.type).toBe('searchset');
    const sp = st.body.entry[0].resource.parameter;
    expect(sp.find((x: any) => x.name === 'type').valueCode).toBe('query-status');
    expect(sp.find((x: any) => x.name === 'events-since-subscription-start').valueString).toBe('2');

    const replay = await http('GET', `${srv.base}/Subscription/${sub}/$events?eventsSinceNumber=2&eventsUntilNumber=2`);
    expect(replay.status).toBe(200);
    const rp = replay.body.entry[0].resource.parameter;
    expect(rp.find((x: any) => x.name === 'type').valueCode).toBe('query-event');
    expect(rp.filter((x: any) => x.name === 'notification-event').map((x: any) => x.part[0].valueString)).toEqual(['2']);
    const bad = await http('GET', `${srv.base}/Subscription/${sub}/$events?eventsSinceNumber=abc`);
    expect(bad.status).toBe(400);
    expect(bad.body.resourceType).toBe('OperationOutcome');
  });

  it('id-only content carries the focus URL but no resource; heartbeats arrive when asked for', async () => {
    const sub = await subscribe({
      criteria: `${TOPIC}/invoice`,
      channel: restHook('/idonly', { payload: 'application/fhir+json', _payload: { extension: [{ url: `${BP}/backport-payload-content`, valueCode: 'id-only' }] }, extension: [{ url: `${BP}/backport-heartbeat-period`, valueUnsignedInt: 1 }] }),
    });
    const inv = (await http('POST', `${srv.base}/Invoice`, { body: { resourceType: 'Invoice', status: 'draft', subject: { reference: 'Patient/pa' } } })).body;
    const hit = await waitFor('the event', () => rx.hits.find((h) => h.url === '/idonly' && h.headers['x-medivoy-notification-type'] === 'event-notification'));
    const b = JSON.parse(hit.body);
    expect(b.entry[1].fullUrl).toMatch(new RegExp(`/Invoice/${inv.id}$`));
    expect(b.entry[1].resource).toBeUndefined();
    // (A heartbeat may also fall between the handshake and the event; the one after the event counts it.)
    const hb = await waitFor('a heartbeat', () => rx.hits.slice(rx.hits.indexOf(hit)).find((h) => h.url === '/idonly' && h.headers['x-medivoy-notification-type'] === 'heartbeat'));
    const hbStatus = JSON.parse(hb.body).entry[0].resource.parameter;
    expect(hbStatus.find((x: any) => x.name === 'type').valueCode).toBe('heartbeat');
    expect(hbStatus.find((x: any) => x.name === 'events-since-subscription-start').valueString).toBe('1');
    await http('PUT', `${srv.base}/Subscription/${sub}`, { body: { resourceType: 'Subscription', id: sub, status: 'off', reason: 'test', criteria: `${TOPIC}/invoice`, channel: restHook('/idonly') } });
  });
});

describe('guaranteed delivery', () => {
  it('a receiver that is down for a while gets everything afterwards, in order', async () => {
    const sub = await subscribe({ criteria: 'Observation?code=http://loinc.org|7777-7', channel: restHook('/order') });
    await rx.down();
    for (let i = 0; i < 8; i++) await http('POST', `${srv.base}/Observation`, { body: obs('7777-7', 'pa') });
    // While it is down the subscription keeps retrying (its status says so) and stays active.
    await waitFor('a recorded failure', async () => {
      const st = await http('GET', `${srv.base}/Subscription/${sub}/$status`);
      return st.body.entry[0].resource.parameter.some((x: any) => x.name === 'error') && true;
    });
    await rx.up();
    await waitFor('all eight', () => eventNumbers(rx.hits, sub).length >= 8 && true);
    expect(distinct(eventNumbers(rx.hits, sub))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect((await http('GET', `${srv.base}/Subscription/${sub}`)).body.status).toBe('active');
  });

  it('a backlog reaches a topic subscription in Bundles of at most backport-max-count events, in order', async () => {
    const sub = await subscribe({
      criteria: `${TOPIC}/observation`,
      _criteria: { extension: [{ url: `${BP}/backport-filter-criteria`, valueString: 'Observation?code=http://loinc.org|mc-1' }] },
      channel: restHook('/batched', { payload: 'application/fhir+json', _payload: { extension: [{ url: `${BP}/backport-payload-content`, valueCode: 'id-only' }] }, extension: [{ url: `${BP}/backport-max-count`, valueUnsignedInt: 3 }] }),
    });
    await rx.down();
    for (let i = 0; i < 5; i++) await http('POST', `${srv.base}/Observation`, { body: obs('mc-1', 'pa') });
    await waitFor('five events numbered', async () => {
      const st = await http('GET', `${srv.base}/Subscription/${sub}/$status`);
      return st.body.entry[0].resource.parameter.find((x: any) => x.name === 'events-since-subscription-start').valueString === '5';
    });
    await rx.up();
    const bundles = () => rx.hits.filter((h) => h.url === '/batched' && h.headers['x-medivoy-notification-type'] === 'event-notification').map((h) => JSON.parse(h.body));
    const numbersIn = (b: any) => b.entry[0].resource.parameter.filter((x: any) => x.name === 'notification-event').map((x: any) => Number(x.part[0].valueString));
    await waitFor('all five', () => distinct(bundles().flatMap(numbersIn)).length >= 5 && true);
    expect(bundles().every((b) => numbersIn(b).length >= 1 && numbersIn(b).length <= 3 && b.entry.length === numbersIn(b).length + 1)).toBe(true);
    expect(distinct(bundles().flatMap(numbersIn))).toEqual([1, 2, 3, 4, 5]);
    // All five were numbered while the receiver was down, so the first Bundle it accepted carried three.
    expect(numbersIn(bundles()[0])).toEqual([1, 2, 3]);
    // No event before the handshake was accepted.
    expect(rx.hits.filter((h) => h.url === '/batched')[0]!.headers['x-medivoy-notification-type']).toBe('handshake');
  });

  it('answers 500, then a redirect (not followed), then recovers: in order, nothing skipped', async () => {
    const sub = await subscribe({ criteria: 'Observation?code=http://loinc.org|8888-8', channel: restHook('/flaky') });
    rx.state.mode = '500';
    for (let i = 0; i < 3; i++) await http('POST', `${srv.base}/Observation`, { body: obs('8888-8', 'pa') });
    await waitFor('two refusals', () => rx.refused.filter((h) => h.url === '/flaky').length >= 2 && true);
    rx.state.mode = 'redirect';
    await waitFor('a redirect answered', () => rx.refused.filter((h) => h.url === '/flaky').length >= 3 && true);
    rx.state.mode = 'ok';
    await waitFor('all three', () => eventNumbers(rx.hits, sub).length >= 3 && true);
    expect(distinct(eventNumbers(rx.hits, sub))).toEqual([1, 2, 3]);
    // Refused attempts were always for the first undelivered event: never event 2 before 1 was accepted.
    expect(rx.refused.filter((h) => h.url === '/flaky').every((h) => h.headers['x-medivoy-event-number'] === '1')).toBe(true);
  });

  it('a slow receiver (answering after the timeout) gets the event again and then the next ones in order', async () => {
    const sub = await subscribe({ criteria: 'Observation?code=http://loinc.org|9999-9', channel: restHook('/slow') });
    rx.state.slowOnce = true;
    for (let i = 0; i < 3; i++) await http('POST', `${srv.base}/Observation`, { body: obs('9999-9', 'pa') });
    await waitFor('all three', () => eventNumbers(rx.hits, sub).length >= 3 && true);
    expect(rx.refused.filter((h) => h.url === '/slow').map((h) => h.headers['x-medivoy-event-number'])).toEqual(['1']);
    expect(distinct(eventNumbers(rx.hits, sub))).toEqual([1, 2, 3]);
  });
});

describe('email channel', () => {
  it('mails a notification through the mailer', async () => {
    await subscribe({ criteria: 'Observation?code=http://loinc.org|1212-1', channel: { type: 'email', endpoint: 'mailto:lab@clinic.example', payload: 'application/fhir+json' } });
    const o = (await http('POST', `${srv.base}/Observation`, { body: obs('1212-1', 'pa') })).body;
    const mail = await waitFor('the e-mail', () => smtp.inbox.find((m) => m.to.includes('lab@clinic.example')));
    expect(mail.subject).toContain(`created Observation/${o.id} (event 1)`);
    expect(mail.body).toContain(o.id);
  });
});

describe('bad input', () => {
  const cases: [string, Record<string, unknown>, number][] = [
    ['unsupported channel', { criteria: 'Observation?code=1', channel: { type: 'websocket', endpoint: 'ws://x' } }, 422],
    ['endpoint outside the allow-list', { criteria: 'Observation?code=1', channel: { type: 'rest-hook', endpoint: 'http://10.1.2.3/hook' } }, 422],
    ['loopback name not allowed', { criteria: 'Observation?code=1', channel: { type: 'rest-hook', endpoint: 'http://localhost:9/hook' } }, 422],
    ['endpoint that is not a URL', { criteria: 'Observation?code=1', channel: { type: 'rest-hook', endpoint: 'not a url' } }, 422],
    ['unknown search parameter', { criteria: 'Observation?colour=red', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/h' } }, 422],
    ['chained criteria', { criteria: 'Observation?subject.name=x', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/h' } }, 422],
    ['_has', { criteria: 'Patient?_has:Observation:subject:code=1', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/h' } }, 422],
    ['not a resource type', { criteria: 'Blob?x=1', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/h' } }, 422],
    ['unknown topic', { criteria: `${TOPIC}/spaceship`, channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/h' } }, 422],
    ['filter of another type', { criteria: `${TOPIC}/encounter`, _criteria: { extension: [{ url: `${BP}/backport-filter-criteria`, valueString: 'Observation?code=1' }] }, channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/h' } }, 422],
    ['unsupported payload', { criteria: 'Observation?code=1', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/h', payload: 'application/xml' } }, 422],
    ['malformed header', { criteria: 'Observation?code=1', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/h', header: ['no colon here'] } }, 422],
    ['bad email endpoint', { criteria: 'Observation?code=1', channel: { type: 'email', endpoint: 'lab@clinic.example' } }, 422],
    ['malformed date value', { criteria: 'Observation?date=yesterday', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/h' } }, 400],
    ['status error set by a client', { status: 'error', criteria: 'Observation?code=1', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/h' } }, 422],
  ];
  it.each(cases)('%s: OperationOutcome and nothing stored', async (_name, body, status) => {
    const before = (await http('GET', `${srv.base}/Subscription?_summary=count`)).body.total;
    const res = await http('POST', `${srv.base}/Subscription`, { body: { resourceType: 'Subscription', status: 'requested', reason: 'bad', ...body } });
    expect(res.status).toBe(status);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect((await http('GET', `${srv.base}/Subscription?_summary=count`)).body.total).toBe(before);
  });

  it('an owner extension sent by the client is replaced by the server\'s own record of the writer', async () => {
    const forged = { url: 'http://medivoy.example/fhir/StructureDefinition/subscription-owner', valueString: JSON.stringify({ since: '2000-01-01T00:00:00Z', access: { clientId: 'someone-else', scopes: ['system/*.rs'] } }) };
    const res = await http('POST', `${srv.base}/Subscription`, { body: { resourceType: 'Subscription', status: 'requested', reason: 'forged', criteria: 'Observation?code=forged', channel: restHook('/forged'), extension: [forged] } });
    expect(res.status).toBe(201);
    const owners = res.body.extension.filter((e: any) => e.url === forged.url);
    expect(owners).toHaveLength(1);
    const owner = JSON.parse(owners[0].valueString);
    expect(owner.access.clientId).not.toBe('someone-else');
    expect(Date.parse(owner.since)).toBeGreaterThan(Date.parse('2020-01-01'));
  });

  it('a Subscription PATCHed to an endpoint outside the allow-list is refused and left as it was', async () => {
    const sub = await subscribe({ criteria: 'Observation?code=http://loinc.org|0000-0', channel: restHook('/patch') });
    const res = await http('PATCH', `${srv.base}/Subscription/${sub}`, { raw: JSON.stringify([{ op: 'replace', path: '/channel/endpoint', value: 'http://192.168.0.10/x' }]), headers: { 'content-type': 'application/json-patch+json' } });
    expect(res.status).toBe(422);
    expect((await http('GET', `${srv.base}/Subscription/${sub}`)).body.channel.endpoint).toBe(`${rx.url}/patch`);
  });
});
