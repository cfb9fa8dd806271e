import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { loadConfig } from '../src/config/config.js';
import { startServer, type RunningServer } from '../src/server.js';
import { http } from './support/server.js';
import { backendToken, registerBackendClient } from './support/auth.js';
import { RedisProcess } from './support/redis-process.js';
import { patient } from './support/factories.js';

/**
 * Redis (a redis-server of this test's own, never the shared one) stopped and started again under two servers:
 * one with the request rate limits on, one with them off (so the sign-in throttle alone is what stands).
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PASSWORD = 'Gl4cier-Walk!9';
let ipSeq = 0;
const freshIp = () => `10.77.${Math.floor(++ipSeq / 250)}.${ipSeq % 250}`;

async function startLogged(env: Record<string, string>) {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
  const config = loadConfig({ ...process.env, NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', MONGODB_DB: `t_${randomBytes(6).toString('hex')}`, ...env });
  const running: RunningServer = await startServer(config, pino({ level: 'info' }, sink));
  return {
    running, lines, base: `${running.url}/fhir`, url: running.url,
    logged: (re: RegExp) => lines.some((l) => re.test(l)),
    async close() {
      await running.mongo.db.dropDatabase().catch(() => undefined);
      await running.close();
    },
  };
}

let redis: RedisProcess;
let limited: Awaited<ReturnType<typeof startLogged>>;
let unlimited: Awaited<ReturnType<typeof startLogged>>;
beforeAll(async () => {
  redis = await RedisProcess.create();
  limited = await startLogged({ REDIS_URL: redis.url, AUTH_MAX_FAILURES: '3' });
  unlimited = await startLogged({ REDIS_URL: redis.url, AUTH_MAX_FAILURES: '3', RATE_LIMIT_ENABLED: 'false' });
}, 60_000);
afterAll(async () => {
  await limited?.close();
  await unlimited?.close();
  await redis?.stop();
});

const post = (base: string, path: string, body: unknown, ip: string) =>
  http('POST', `${base}/auth${path}`, { body, headers: { 'content-type': 'application/json', 'x-forwarded-for': ip } });

async function register(url: string): Promise<string> {
  const email = `fault.${randomUUID().slice(0, 8)}@example.org`;
  const res = await post(url, '/register', { email, password: PASSWORD, givenName: 'Ada', familyName: 'Lovelace' }, freshIp());
  expect(res.status).toBe(201);
  return email;
}
/** A password attempt through the password-change endpoint (it checks the current password like a login). */
const attempt = (url: string, email: string, password: string, ip: string) =>
  post(url, '/password/change', { email, currentPassword: password, newPassword: 'Other-Harbor-55!' }, ip);

async function waitFor(what: string, cond: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await cond()) return;
    await sleep(100);
  }
  throw new Error(`gave up waiting for: ${what}`);
}

describe('Redis stopped and started again', () => {
  it('fails sign-in closed, serves FHIR without cache or limits (logged), and resumes everything when Redis is back', async () => {
    const c = await registerBackendClient(limited.running, 'system/*.*');
    const { access_token: token } = await backendToken(limited.running, c, 'system/*.*');
    const fhir = (method: string, path: string, body?: unknown) => http(method, `${limited.base}${path}`, { token, body, headers: { 'x-forwarded-for': freshIp() } });
    const emails = { limited: await register(limited.url), unlimited: await register(unlimited.url) };

    // Up: reads are limited (headers) and cached in Redis.
    const p = await fhir('POST', '/Patient', patient({ name: [{ family: 'Cache', given: ['v1'] }] }));
    expect(p.status).toBe(201);
    const id = p.body.id as string;
    expect((await fhir('GET', `/Patient/${id}`)).headers.get('ratelimit-limit')).toBeTruthy();
    await fhir('GET', `/Patient/${id}`);
    expect(redis.keys(`${limited.running.mongo.db.databaseName}:rc:*:v:Patient/${id}`)).toHaveLength(1);

    await redis.stop();
    await waitFor('both servers see Redis down', async () => !(await limited.running.kv.ping()) && !(await unlimited.running.kv.ping()));

    // Sign-in fails closed on both servers: no attempt is checked against the password (no 401), however many.
    for (const [srv, email] of [[limited, emails.limited], [unlimited, emails.unlimited]] as const) {
      const ip = freshIp();
      for (let i = 0; i < 10; i++) {
        const res = await attempt(srv.url, email, `wrong-${i}`, ip);
        expect({ status: res.status, code: res.body?.issue?.[0]?.code }).toEqual({ status: 503, code: 'transient' });
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      }
      // Not even the right password gets through while the throttle cannot count.
      expect((await attempt(srv.url, email, PASSWORD, ip)).status).toBe(503);
    }
    expect(limited.logged(/sign-in refused \(fails closed\)/)).toBe(true);

    // FHIR is served: without rate limits (said in the log) and without the cache (a write is read back at once).
    const up = await fhir('PUT', `/Patient/${id}`, patient({ id, name: [{ family: 'Cache', given: ['v2'] }] }));
    expect(up.status).toBe(200);
    const read = await fhir('GET', `/Patient/${id}`);
    expect({ status: read.status, version: read.body.meta.versionId, given: read.body.name[0].given[0] }).toEqual({ status: 200, version: '2', given: 'v2' });
    expect(read.headers.get('ratelimit-limit')).toBeNull();
    expect(limited.logged(/requests served without limits \(fail open\)/)).toBe(true);
    expect((await http('GET', `${limited.url}/ready`)).status).toBe(503);

    await redis.start();
    await waitFor('both servers see Redis again', async () => (await limited.running.kv.ping()) && (await unlimited.running.kv.ping()));

    // Limits count again, and the log says Redis is back.
    await waitFor('a limited read', async () => (await fhir('GET', `/Patient/${id}`)).headers.get('ratelimit-limit') !== null);
    expect(limited.logged(/rate-limit store reachable again/)).toBe(true);
    expect((await http('GET', `${limited.url}/ready`)).status).toBe(200);

    // Sign-in works again and the throttle counts: the right password passes, wrong ones lock after 3.
    for (const [srv, email] of [[limited, emails.limited], [unlimited, emails.unlimited]] as const) {
      const ip = freshIp();
      expect((await attempt(srv.url, email, PASSWORD, ip)).status).toBe(200);
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await attempt(srv.url, email, `wrong-${i}`, ip)).status);
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
    }

    // The cache resumes in a new generation (the write during the outage could not invalidate): no stale read.
    await waitFor('the cache generation renewed', () => limited.logged(/new generation; cached reads resume/));
    const after = await fhir('GET', `/Patient/${id}`);
    expect(after.body.meta.versionId).toBe('2');
    await fhir('GET', `/Patient/${id}`);
    expect(redis.keys(`${limited.running.mongo.db.databaseName}:rc:*:v:Patient/${id}`).length).toBeGreaterThanOrEqual(1);
    const v3 = await fhir('PUT', `/Patient/${id}`, patient({ id, name: [{ family: 'Cache', given: ['v3'] }] }));
    expect(v3.status).toBe(200);
    expect((await fhir('GET', `/Patient/${id}`)).body.meta.versionId).toBe('3');
  }, 60_000);
});
