import { randomBytes } from 'node:crypto';
import { startRoundRobinProxy } from '../../scripts/lib/round-robin-proxy.js';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/infra/logger.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { systemTokenSource } from './auth.js';

/** Per server origin: where `http` gets the default access token from. */
const tokenSources = new Map<string, () => Promise<string>>();

export interface TestServer {
  running: RunningServer;
  /** Every instance serving `base`: `running` alone, or both of a pair (TEST_SERVERS=2), e.g. to count job runs. */
  instances: RunningServer[];
  /** FHIR base URL of the running instance. */
  base: string;
  url: string;
  close(): Promise<void>;
}

/**
 * Boots the whole application on a random port against the real MongoDB-wire engine (MONGODB_URI) and Redis
 * (REDIS_URL), in a database of its own that is dropped on close.
 */
export async function startTestServer(env: Record<string, string> = {}, opts: { keepDb?: boolean; dbName?: string; single?: boolean } = {}): Promise<TestServer> {
  // TEST_SERVERS=2 runs every test against two server instances on one database behind a round-robin proxy.
  if (process.env.TEST_SERVERS === '2' && !opts.single && !env.BASE_URL) return startServerPair(env, opts);
  const dbName = opts.dbName ?? `t_${randomBytes(6).toString('hex')}`;
  const config = loadConfig({
    ...process.env,
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    MONGODB_DB: dbName,
    ...env,
  });
  const running = await startServer(config, createLogger(config.logLevel));
  const base = `${running.url}/fhir`;
  tokenSources.set(new URL(running.url).origin, await systemTokenSource(running));
  return {
    running,
    instances: [running],
    base,
    url: running.url,
    async close() {
      if (!opts.keepDb) await running.mongo.db.dropDatabase().catch(() => undefined);
      await running.close();
    },
  };
}

/**
 * Two server instances on one database and Redis, behind a round-robin HTTP proxy whose address is their public
 * base URL (so tokens, cursors and links are valid through either). `running` is the first instance: tests that
 * reach into the server (accounts, auth) use it, while every HTTP request alternates between the two.
 */
async function startServerPair(env: Record<string, string>, opts: { keepDb?: boolean; dbName?: string }): Promise<TestServer> {
  const pair = await startInstancePair(env, opts);
  tokenSources.set(new URL(pair.url).origin, tokenSources.get(new URL(pair.a.url).origin)!);
  return { running: pair.a.running, instances: [pair.a.running, pair.b.running], base: `${pair.url}/fhir`, url: pair.url, close: pair.close };
}

export interface InstancePair {
  a: TestServer;
  b: TestServer;
  /** The round-robin proxy in front of both: their public BASE_URL. */
  url: string;
  /** Stops both and the proxy, dropping the database unless `keepDb`. */
  close(): Promise<void>;
}

/** Two instances on one database and Redis with one public base URL (a round-robin proxy), for tests that address each. */
export async function startInstancePair(env: Record<string, string>, opts: { keepDb?: boolean; dbName?: string } = {}): Promise<InstancePair> {
  const dbName = opts.dbName ?? `t_${randomBytes(6).toString('hex')}`;
  const targets: URL[] = [];
  const proxy = await startRoundRobinProxy(targets);
  const pairEnv = { ...env, BASE_URL: proxy.url };
  const a = await startTestServer(pairEnv, { keepDb: true, dbName, single: true });
  let b: TestServer;
  try {
    b = await startTestServer(pairEnv, { keepDb: true, dbName, single: true });
  } catch (err) {
    await a.close();
    await proxy.close();
    throw err;
  }
  targets.push(new URL(a.url), new URL(b.url));
  return {
    a,
    b,
    url: proxy.url,
    async close() {
      await proxy.close();
      await b.close();
      if (!opts.keepDb) await a.running.mongo.db.dropDatabase().catch(() => undefined);
      await a.close();
    },
  };
}

/** `Authorization` header with the default test token of the server at `url` (for clients other than `http`). */
export async function authHeaders(url: string): Promise<Record<string, string>> {
  const token = await tokenSources.get(new URL(url).origin)?.();
  return token ? { authorization: `Bearer ${token}` } : {};
}

export interface HttpResult<T = any> {
  status: number;
  headers: Headers;
  text: string;
  /** The body as received (for binary files). */
  bytes: Buffer;
  body: T;
}

/** Plain HTTP against the server: what a client sees, with the JSON body parsed when there is one. */
export async function http<T = any>(
  method: string,
  url: string,
  opts: { body?: unknown; raw?: string | Buffer; headers?: Record<string, string>; /** false: no token; a string: that token */ token?: false | string } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  // Every request carries an access token (full system access) unless the test says otherwise.
  const hasAuth = Object.keys(headers).some((h) => h.toLowerCase() === 'authorization');
  if (!hasAuth && opts.token !== false && /^\/(fhir|auth)(\/|$)/.test(new URL(url).pathname)) {
    const token = typeof opts.token === 'string' ? opts.token : await tokenSources.get(new URL(url).origin)?.();
    if (token) headers.authorization = `Bearer ${token}`;
  }
  let body: string | Buffer | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/fhir+json';
  }
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body });
  } catch (err) {
    // A pooled keep-alive socket to a server that has since closed (a later server can get the same port):
    // the request never reached a server, so sending it once more on a fresh connection is safe.
    if ((err as { cause?: { code?: string } }).cause?.code !== 'ECONNRESET') throw err;
    res = await fetch(url, { method, headers: { ...headers, connection: 'close' }, body });
  }
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = bytes.toString('utf8');
  let parsed: any;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, bytes, body: parsed };
}
