import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import { MongoClient } from 'mongodb';
import { checkHostileInput, fetchSender, violation, type FuzzRequest, type Send } from '../scripts/lib/hostile-input.js';
import { ServerProcess } from './support/server-process.js';

/**
 * Hostile input against the real server running as its own process (so that a crash shows as a dead process
 * and its memory can be read): a seeded property-based run over bodies, query strings, headers and Bundle
 * shapes (`npm run fuzz` runs the same properties for longer), fixed worst cases, and every case the fuzzing
 * ever found, kept as a regression test.
 */
const DB = `t_${randomBytes(6).toString('hex')}`;
const SEED = Number(process.env.FUZZ_SEED ?? 20261203);
let srv: ServerProcess;
let tokens: Awaited<ReturnType<ServerProcess['tokenSource']>>;
let send: Send;

beforeAll(async () => {
  srv = await ServerProcess.start({ MONGODB_DB: DB, LOG_LEVEL: 'error', RATE_LIMIT_ENABLED: 'false' });
  tokens = await srv.tokenSource(DB);
  send = fetchSender(srv.base, tokens.token, 60_000);
  // Something to find, include and update.
  const res = await send({ method: 'PUT', path: '/Patient/p1', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify({ resourceType: 'Patient', id: 'p1', name: [{ family: 'Aaaa' }] }) });
  expect(res.status).toBeLessThan(300);
}, 90_000);
afterAll(async () => {
  // What the server logged as failures (a 500 logs its error with the request id), for whoever reads a red run.
  const errorsLogged = srv?.lines.filter((l) => Number(l.level) >= 50) ?? [];
  if (errorsLogged.length) process.stderr.write(`server errors:\n${errorsLogged.slice(0, 10).map((l) => JSON.stringify(l).slice(0, 3000)).join('\n')}\n`);
  await tokens?.close();
  await srv?.kill('SIGTERM');
  const client = await new MongoClient(process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/').connect();
  await client.db(DB).dropDatabase().catch(() => undefined);
  await client.close();
});

async function expectKept(r: FuzzRequest): Promise<number> {
  const a = await send(r);
  expect({ request: `${r.method} ${r.path.slice(0, 200)}`, violation: violation(r, a) }).toEqual({ request: `${r.method} ${r.path.slice(0, 200)}`, violation: undefined });
  return a.status;
}
const json = { 'content-type': 'application/fhir+json' };

describe('property-based hostile input', () => {
  it(`keeps every property over 300 seeded cases (seed ${SEED})`, async () => {
    await checkHostileInput(send, { runs: 300, seed: SEED });
    expect(srv.alive).toBe(true);
  }, 120_000);
});

describe('regressions: cases the fuzzing found', () => {
  it('a body with a "__proto__" key is a 400 OperationOutcome (was a 500: the JSON parser\'s refusal was not mapped)', async () => {
    const body = '{"resourceType":"Condition","resource":{"$where":";q"},"__proto__":{"$where":""},"_birthDate":{"$where":"p;``"}}';
    expect(await expectKept({ method: 'PATCH', path: '/Bundle/-', headers: { 'content-type': 'application/json-patch+json' }, body })).toBe(400);
    expect(await expectKept({ method: 'POST', path: '/Patient', headers: json, body: '{"resourceType":"Patient","__proto__":{"admin":true}}' })).toBe(400);
    expect(await expectKept({ method: 'POST', path: '/Patient', headers: json, body: '{"resourceType":"Patient","x":{"constructor":{"prototype":{"admin":true}}}}' })).toBe(400);
  });

  it('a query string longer than the HTTP parser accepts is a 431 OperationOutcome (was a bare 431 from Node)', async () => {
    const q = Array.from({ length: 10_000 }, (_, i) => `name=a${i}`).join('&');
    expect(await expectKept({ method: 'GET', path: `/Patient?${q}`, headers: {} })).toBe(431);
  });

  it('deeply nested JSON is refused before it is parsed (was parsed whole: about 1 GB of resident memory for 15 MB)', async () => {
    const before = srv.rss();
    for (let i = 0; i < 3; i++) {
      const body = `{"resourceType":"Patient","extension":${'['.repeat(7_000_000)}${']'.repeat(7_000_000)}}`;
      expect(await expectKept({ method: 'POST', path: '/Patient', headers: json, body })).toBe(400);
    }
    // Reading three 14 MB bodies as text costs tens of megabytes, not hundreds.
    expect(srv.rss() - before).toBeLessThan(300 * 1024 * 1024);
    // A resource nested as deep as real ones (contained, extensions, Questionnaire items) is still accepted.
    let item: Record<string, unknown> = { linkId: 'leaf', text: 'Leaf', type: 'string' };
    for (let i = 0; i < 40; i++) item = { linkId: `g${i}`, text: `Group ${i}`, type: 'group', item: [item] };
    expect((await send({ method: 'POST', path: '/Questionnaire', headers: json, body: JSON.stringify({ resourceType: 'Questionnaire', status: 'active', item: [item] }) })).status).toBe(201);
  }, 60_000);
});

describe('fixed worst cases', () => {
  it('a 15 MB body of deeply nested JSON', async () => {
    const depth = 7_500_000;
    const body = `{"resourceType":"Patient","extension":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    expect(body.length).toBeGreaterThan(15_000_000);
    expect(await expectKept({ method: 'POST', path: '/Patient', headers: json, body })).toBe(400);
    const objects = `{"resourceType":"Patient","a":${'{"a":'.repeat(2_400_000)}1${'}'.repeat(2_400_000)}}`;
    expect(await expectKept({ method: 'POST', path: '/Patient', headers: json, body: objects })).toBe(400);
    expect(await expectKept({ method: 'POST', path: '', headers: json, body: `{"resourceType":"Bundle","type":"transaction","entry":${'['.repeat(depth)}${']'.repeat(depth)}}` })).toBe(400);
  }, 60_000);

  it('a search with 10,000 parameters (query string and form body)', async () => {
    const q = Array.from({ length: 10_000 }, (_, i) => `name=a${i}`).join('&');
    await expectKept({ method: 'GET', path: `/Patient?${q}`, headers: {} });
    await expectKept({ method: 'POST', path: '/Patient/_search', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: q });
    const distinct = Array.from({ length: 10_000 }, (_, i) => `p${i}=x`).join('&');
    await expectKept({ method: 'POST', path: '/Patient/_search', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: distinct });
  }, 60_000);

  it('a 5,000-level _include:iterate chain', async () => {
    const chain = Array.from({ length: 5_000 }, () => '_include:iterate=Patient:link').join('&');
    await expectKept({ method: 'POST', path: '/Patient/_search', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `_id=p1&${chain}` });
    const rev = Array.from({ length: 5_000 }, () => '_revinclude:iterate=Patient:link').join('&');
    await expectKept({ method: 'POST', path: '/Patient/_search', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `_id=p1&${rev}` });
    // A chained parameter 5,000 links long.
    const chained = `link${'.link'.repeat(5_000)}.name=x`;
    await expectKept({ method: 'POST', path: '/Patient/_search', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: chained });
  }, 60_000);

  it('a regex-hungry :contains value', async () => {
    for (const v of ['(a+)+$', `${'a'.repeat(20_000)}!`, '(.*a){25}', `${'(a|a)*'.repeat(200)}b`, '\\', '[', '.*'.repeat(5000)]) {
      await expectKept({ method: 'GET', path: `/Patient?name:contains=${encodeURIComponent(v)}`, headers: {} });
      await expectKept({ method: 'POST', path: '/Patient/_search', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `family:contains=${encodeURIComponent(v)}&name=${encodeURIComponent(v)}` });
    }
  }, 60_000);

  it('MongoDB operators in bodies and query strings are data, never operators', async () => {
    expect(await expectKept({ method: 'POST', path: '/Patient', headers: json, body: JSON.stringify({ resourceType: 'Patient', $where: 'sleep(10000) || true' }) })).toBe(400);
    expect(await expectKept({ method: 'POST', path: '/Patient', headers: json, body: JSON.stringify({ resourceType: 'Patient', name: [{ family: { $gt: '' } }] }) })).toBe(400);
    expect(await expectKept({ method: 'PUT', path: '/Patient/p1', headers: json, body: JSON.stringify({ resourceType: 'Patient', id: { $ne: null } }) })).toBe(400);
    expect(await expectKept({ method: 'POST', path: '', headers: json, body: JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Patient?_id[$ne]=x' } }, { request: { method: { $gt: '' }, url: 'Patient' } }] }) })).toBeLessThan(500);
    // An operator in the query matches nothing (it is a value), and is never taken as a filter that matches everything.
    for (const q of ['_id[$ne]=nothing', '_id=%7B%22%24ne%22%3Anull%7D', 'name[$gt]=', 'name=%24gt', 'family[$regex]=.*', '$where=1']) {
      const r = { method: 'GET', path: `/Patient?${q}`, headers: {} };
      const a = await send(r);
      expect({ q, violation: violation(r, a) }).toEqual({ q, violation: undefined });
      if (a.status === 200) expect({ q, ids: (JSON.parse(a.text).entry ?? []).map((e: any) => e.resource?.id).filter((id: string) => id === 'p1') }).toEqual({ q, ids: [] });
    }
  }, 60_000);

  it('a request that is not valid HTTP gets a 400 OperationOutcome, not a bare refusal', async () => {
    const { port } = new URL(srv.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write('GET /fhir/Patient HTTP/1.1\r\nHost: x\r\nThis is no header\r\n\r\n'));
      let out = '';
      socket.on('data', (d: Buffer) => (out += d.toString()));
      socket.on('close', () => resolve(out));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toMatch(/content-type: application\/fhir\+json/i);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).resourceType).toBe('OperationOutcome');
  });

  it('the server is alive and its memory is bounded afterwards', async () => {
    expect(srv.alive).toBe(true);
    expect((await fetch(`${srv.url}/health`)).status).toBe(200);
    // 15 MB bodies were parsed several times; what stays resident is bounded (the fuzzing adds little).
    process.stderr.write(`server RSS after the hostile input: ${Math.round(srv.rss() / 1024 / 1024)} MB\n`);
    expect(srv.rss()).toBeLessThan(800 * 1024 * 1024);
  });
});
