/**
 * Request rate limits (http/rate-limit.ts) against the real server and Redis: per client (its registration's
 * own limit, sliding window and token bucket), per user, per IP and for sign-ins per IP; 429 with an
 * OperationOutcome, Retry-After and RateLimit-* headers; two server processes sharing one count; a Redis that
 * goes away (reads fail open, sign-ins fail closed); and the in-process limiter without Redis.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { loadConfig } from '../src/config/config.js';
import { startServer, type RunningServer } from '../src/server.js';
import { http, startTestServer, type TestServer } from './support/server.js';
import { backendToken, clientAssertion, registerBackendClient, tokenRequest, type BackendClient } from './support/auth.js';
import { signIn } from '../scripts/lib/browser-login.js';
import { runEntryPoint } from './support/run-entry-point.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PASSWORD = 'Blue-Harbor-72!';

/** A fresh address per test, so that tests sharing a server do not share per-IP counts (the app trusts X-Forwarded-For). */
let ipSeq = 0;
const freshIp = () => `10.${process.pid % 250}.${Math.floor(++ipSeq / 250)}.${ipSeq % 250}`;

/** A backend client with `rate_limit` in its registration, and a token for it. */
async function limitedClient(running: RunningServer, rateLimit?: Record<string, unknown>) {
  const c = await registerBackendClient(running, 'system/*.rs');
  if (rateLimit) {
    const jwk = { ...c.privateKey.export({ format: 'jwk' }), kid: c.kid, alg: c.alg, use: 'sig' } as Record<string, unknown>;
    delete jwk.d;
    await running.auth.registerClient({ kind: 'backend', client_id: c.clientId, jwks: { keys: [jwk] }, allowed_scopes: 'system/*.rs', rate_limit: rateLimit as any });
  }
  return { client: c, token: (await backendToken(running, c, 'system/*.rs')).access_token };
}

const get = (url: string, token: string | false, ip: string) => http('GET', url, { token, headers: { 'x-forwarded-for': ip } });

function expectThrottled(res: { status: number; headers: Headers; body: any }) {
  expect(res.status).toBe(429);
  expect(res.body.resourceType).toBe('OperationOutcome');
  expect(res.body.issue[0].code).toBe('throttled');
  const retry = Number(res.headers.get('retry-after'));
  expect(Number.isInteger(retry) && retry >= 1).toBe(true);
  expect(res.headers.get('ratelimit-remaining')).toBe('0');
  return retry;
}

/** A server whose log lines the test can read (startTestServer's log is silent). */
async function startLogged(env: Record<string, string>) {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
  const config = loadConfig({ ...process.env, NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', MONGODB_DB: `t_${randomBytes(6).toString('hex')}`, ...env });
  const running = await startServer(config, pino({ level: 'info' }, sink));
  return {
    running, lines, base: `${running.url}/fhir`,
    logged: (re: RegExp) => lines.some((l) => re.test(l)),
    async close() {
      await running.mongo.db.dropDatabase().catch(() => undefined);
      await running.close();
    },
  };
}

describe('limits per client, user and IP', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ RATE_LIMIT_PER_IP: '20', RATE_LIMIT_PER_USER: '4', RATE_LIMIT_WINDOW_SECONDS: '60' });
  }, 60_000);
  afterAll(async () => {
    await srv?.close();
  });

  it('a client over its own limit gets 429 while another client is served, and is served again in a new window', async () => {
    const ip = freshIp();
    const a = await limitedClient(srv.running, { limit: 3, window_seconds: 2 });
    const b = await limitedClient(srv.running);
    for (const remaining of ['2', '1', '0']) {
      const res = await get(`${srv.base}/Patient`, a.token, ip);
      expect(res.status).toBe(200);
      expect(res.headers.get('ratelimit-limit')).toBe('3');
      expect(res.headers.get('ratelimit-remaining')).toBe(remaining);
      expect(Number(res.headers.get('ratelimit-reset'))).toBeGreaterThanOrEqual(1);
    }
    const refused = await get(`${srv.base}/Patient`, a.token, ip);
    const retry = expectThrottled(refused);
    expect(retry).toBeLessThanOrEqual(2);
    expect(refused.body.issue[0].details.text).toMatch(/this client \(3 per 2 s\)/);
    // Another client from the same address is not affected (its limit is the server default).
    const other = await get(`${srv.base}/Patient`, b.token, ip);
    expect(other.status).toBe(200);
    expect(Number(other.headers.get('ratelimit-limit'))).toBeGreaterThan(3);
    // A refused request costs nothing: once Retry-After has passed the client is served again.
    await sleep(retry * 1000);
    expect((await get(`${srv.base}/Patient`, a.token, ip)).status).toBe(200);
  });

  it('a token-bucket client bursts up to its capacity and then gets one request per refill interval', async () => {
    const ip = freshIp();
    const c = await limitedClient(srv.running, { limit: 2, window_seconds: 2, algorithm: 'token-bucket' });
    expect((await get(`${srv.base}/Patient`, c.token, ip)).status).toBe(200);
    expect((await get(`${srv.base}/Patient`, c.token, ip)).status).toBe(200);
    const retry = expectThrottled(await get(`${srv.base}/Patient`, c.token, ip));
    expect(retry).toBe(1); // one token per second
    await sleep(1000);
    expect((await get(`${srv.base}/Patient`, c.token, ip)).status).toBe(200);
    expectThrottled(await get(`${srv.base}/Patient`, c.token, ip));
  });

  it('counts token requests of a client authenticating with HTTP Basic against that client', async () => {
    const c = await srv.running.auth.registerClient({ kind: 'confidential', redirect_uris: ['http://app.example/cb'], allowed_scopes: 'launch/patient patient/*.rs', rate_limit: { limit: 2, window_seconds: 60 } });
    const basic = `Basic ${Buffer.from(`${encodeURIComponent(c.client_id as string)}:${encodeURIComponent(c.client_secret as string)}`).toString('base64')}`;
    const post = (ip: string) => fetch(`${srv.running.auth.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic, 'x-forwarded-for': ip }, body: 'grant_type=authorization_code&code=nope&redirect_uri=http%3A%2F%2Fapp.example%2Fcb' });
    expect((await post(freshIp())).status).toBe(400); // invalid_grant: counted all the same
    expect((await post(freshIp())).status).toBe(400);
    const refused = await post(freshIp()); // from any address
    expect(refused.status).toBe(429);
    const body: any = await refused.json();
    expect(body.issue[0].code).toBe('throttled');
    expect(body.issue[0].details.text).toMatch(/this client/);
  });

  it('refuses a bad rate_limit in a registration with a 400 naming the field', async () => {
    for (const bad of [{ limit: 0 }, { limit: 5, window_seconds: 'soon' }, { limit: 5, algorithm: 'leaky' }, { limit: 5, burst: 2 }, 'fast']) {
      const err: any = await srv.running.auth.registerClient({ kind: 'public', redirect_uris: ['http://app.example/cb'], allowed_scopes: 'patient/*.rs', rate_limit: bad as any }).catch((e) => e);
      expect(err.status).toBe(400);
      expect(err.message).toMatch(/rate_limit/);
    }
  });

  it('counts a user across all their apps', async () => {
    const ip = freshIp();
    const email = `rl-${randomBytes(4).toString('hex')}@example.org`;
    expect((await http('POST', `${srv.url}/auth/register`, { token: false, headers: { 'content-type': 'application/json' }, body: { email, password: PASSWORD, givenName: 'Rita', familyName: 'Limit' } })).status).toBe(201);
    const tokens: string[] = [];
    for (const name of ['app one', 'app two']) {
      const app = await srv.running.auth.registerClient({ kind: 'public', redirect_uris: ['http://app.example/cb'], allowed_scopes: 'launch/patient patient/*.rs', client_name: name });
      const t = await signIn({ issuer: srv.running.auth.issuer, fhirBase: srv.base, clientId: app.client_id as string, redirectUri: 'http://app.example/cb', email, password: PASSWORD, scope: 'launch/patient patient/*.rs' });
      tokens.push(t.access_token);
    }
    for (const token of [tokens[0]!, tokens[1]!, tokens[0]!, tokens[1]!]) expect((await get(`${srv.base}/Observation`, token, ip)).status).toBe(200);
    const refused = await get(`${srv.base}/Observation`, tokens[0]!, ip);
    expectThrottled(refused);
    expect(refused.body.issue[0].details.text).toMatch(/this user/);
    expect(refused.headers.get('ratelimit-limit')).toBe('4');
  });

  it('limits each IP address, anonymous requests included, and other addresses are served', async () => {
    const ip = freshIp();
    for (let i = 0; i < 20; i++) expect((await get(`${srv.base}/metadata`, false, ip)).status).toBe(200);
    const refused = await get(`${srv.base}/metadata`, false, ip);
    expectThrottled(refused);
    expect(refused.body.issue[0].details.text).toMatch(/this IP address/);
    // A bad token is still counted by IP, and answered 401 by the endpoint, not by the limiter.
    expect((await get(`${srv.base}/Patient`, 'not-a-token', freshIp())).status).toBe(401);
    expect((await get(`${srv.base}/metadata`, false, freshIp())).status).toBe(200);
    // Health probes are never limited.
    for (let i = 0; i < 3; i++) expect((await http('GET', `${srv.url}/health`, { token: false, headers: { 'x-forwarded-for': ip } })).status).toBe(200);
  });
});

describe('two server processes', () => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    // One deployment: the same database, Redis and public base URL, so tokens of one process work in the other.
    const dbName = `t_${randomBytes(6).toString('hex')}`;
    const env = { BASE_URL: 'http://medivoy.test' };
    a = await startTestServer(env, { dbName, keepDb: true });
    b = await startTestServer(env, { dbName });
  }, 60_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it('share one count: a client limited to 6 gets 6 answers in total from both', async () => {
    const c = await registerBackendClient(a.running, 'system/*.rs');
    const jwk = { ...c.privateKey.export({ format: 'jwk' }), kid: c.kid, alg: c.alg, use: 'sig' } as Record<string, unknown>;
    delete jwk.d;
    await b.running.auth.registerClient({ kind: 'backend', client_id: c.clientId, jwks: { keys: [jwk] }, allowed_scopes: 'system/*.rs', rate_limit: { limit: 6, window_seconds: 60 } });
    // The token endpoint is reached through one process; the issuer (shared BASE_URL) is the assertion's audience.
    const t = await tokenRequest(`${a.url}/auth/token`, {
      grant_type: 'client_credentials', scope: 'system/*.rs',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(c, a.running.auth.issuer, { aud: a.running.auth.issuer }),
    });
    expect(t.status).toBe(200);
    const token = t.body.access_token as string;
    const ip = freshIp();
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await get(`${(i % 2 ? b : a).url}/fhir/Patient`, token, ip);
      expect(res.status).toBe(200);
      seen.push(res.headers.get('ratelimit-remaining')!);
    }
    expect(seen).toEqual(['5', '4', '3', '2', '1', '0']);
    expectThrottled(await get(`${a.url}/fhir/Patient`, token, ip));
    expectThrottled(await get(`${b.url}/fhir/Patient`, token, ip));
  });
});

describe('when the limiter\'s Redis goes away', () => {
  let port = 0;
  let srv: Awaited<ReturnType<typeof startLogged>>;
  beforeAll(async () => {
    port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    execFileSync('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes']);
    for (let i = 0; i < 50; i++) {
      try {
        if (execFileSync('redis-cli', ['-p', String(port), 'ping']).toString().includes('PONG')) break;
      } catch {
        /* not up yet */
      }
      await sleep(100);
    }
    srv = await startLogged({ REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_SIGNIN_PER_IP: '3', LOG_LEVEL: 'info' });
  }, 60_000);
  afterAll(async () => {
    try {
      execFileSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave'], { stdio: 'ignore' });
    } catch {
      /* already stopped by the test */
    }
    await srv?.close();
  });

  it('limits sign-in requests per IP while Redis is up; then serves reads (fail open, logged) and refuses sign-ins with 503 (fail closed)', async () => {
    const c = await registerBackendClient(srv.running, 'system/*.rs');
    const { access_token: token } = await backendToken(srv.running, c, 'system/*.rs');
    // Sign-in requests (here: the token endpoint) are limited per IP, with an OperationOutcome.
    const ip = freshIp();
    const badGrant = () => fetch(`${srv.running.auth.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip }, body: 'grant_type=client_credentials' });
    for (let i = 0; i < 3; i++) expect((await badGrant()).status).toBe(400);
    const res = await badGrant();
    expect(res.status).toBe(429);
    expect(((await res.json()) as any).issue[0].code).toBe('throttled');
    expect(execFileSync('redis-cli', ['-p', String(port), '--scan', '--pattern', 'rl:*']).toString()).toMatch(/rl:t_[0-9a-f]+:sip:/);

    execFileSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave']);
    for (let i = 0; i < 50 && (await srv.running.kv.ping()); i++) await sleep(100);

    const read = await get(`${srv.base}/Patient`, token, freshIp());
    expect(read.status).toBe(200);
    expect(read.headers.get('ratelimit-limit')).toBeNull();
    expect(srv.logged(/fail open/)).toBe(true);

    const signIn = await fetch(`${srv.running.auth.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
    expect(signIn.status).toBe(503);
    expect(signIn.headers.get('retry-after')).toBe('10');
    const outcome: any = await signIn.json();
    expect(outcome.issue[0].code).toBe('transient');
    expect(outcome.issue[0].details.text).toMatch(/Sign-in is unavailable/);
    const login = await fetch(`${srv.running.url}/auth/interaction/some-uid/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'email=a%40b.c&password=x' });
    expect(login.status).toBe(503);
    expect(srv.logged(/fails closed/)).toBe(true);
  }, 60_000);
});

describe('without Redis', () => {
  it('limits in process and says so in the log', async () => {
    const srv = await startLogged({ REDIS_URL: '', RATE_LIMIT_PER_IP: '2' });
    try {
      expect(srv.logged(/rate limits are counted in this process only/)).toBe(true);
      const ip = freshIp();
      expect((await get(`${srv.base}/metadata`, false, ip)).status).toBe(200);
      expect((await get(`${srv.base}/metadata`, false, ip)).headers.get('ratelimit-remaining')).toBe('0');
      expectThrottled(await get(`${srv.base}/metadata`, false, ip));
      expect((await get(`${srv.base}/metadata`, false, freshIp())).status).toBe(200);
    } finally {
      await srv.close();
    }
  }, 60_000);

  it('runs the token bucket in process too', async () => {
    const srv = await startLogged({ REDIS_URL: '', RATE_LIMIT_PER_IP: '2', RATE_LIMIT_WINDOW_SECONDS: '2', RATE_LIMIT_ALGORITHM: 'token-bucket' });
    try {
      const ip = freshIp();
      expect((await get(`${srv.base}/metadata`, false, ip)).status).toBe(200);
      expect((await get(`${srv.base}/metadata`, false, ip)).status).toBe(200);
      expect(expectThrottled(await get(`${srv.base}/metadata`, false, ip))).toBe(1);
      await sleep(1000);
      expect((await get(`${srv.base}/metadata`, false, ip)).status).toBe(200);
      expectThrottled(await get(`${srv.base}/metadata`, false, ip));
    } finally {
      await srv.close();
    }
  }, 60_000);

  it('is off with RATE_LIMIT_ENABLED=false', async () => {
    const srv = await startLogged({ REDIS_URL: '', RATE_LIMIT_PER_IP: '1', RATE_LIMIT_ENABLED: 'false' });
    try {
      const ip = freshIp();
      for (let i = 0; i < 3; i++) {
        const res = await get(`${srv.base}/metadata`, false, ip);
        expect(res.status).toBe(200);
        expect(res.headers.get('ratelimit-limit')).toBeNull();
      }
    } finally {
      await srv.close();
    }
  }, 60_000);
});

describe('scripts/register-client', () => {
  it('stores --rate-limit in the registration, and refuses a malformed one', async () => {
    const db = `t_${randomBytes(6).toString('hex')}`;
    const env = { MONGODB_URI: process.env.MONGODB_URI ?? '', MONGODB_DB: db, REDIS_URL: process.env.REDIS_URL ?? '', LOG_LEVEL: 'silent', NODE_ENV: 'test' };
    const ok = await runEntryPoint('scripts/register-client.ts', ['--kind', 'public', '--redirect-uri', 'http://app.example/cb', '--scopes', 'patient/*.rs', '--rate-limit', '50/10s:token-bucket'], env);
    expect(ok.stdout).toMatch(/rate limit: {"limit":50,"window_seconds":10,"algorithm":"token-bucket"}/);
    expect(ok.code).toBe(0);
    const bad = await runEntryPoint('scripts/register-client.ts', ['--kind', 'public', '--redirect-uri', 'http://app.example/cb', '--scopes', 'patient/*.rs', '--rate-limit', 'lots'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--rate-limit must look like/);
    const srv = await startTestServer({}, { dbName: db });
    await srv.close(); // drops the database the script wrote to
  }, 120_000);
});
