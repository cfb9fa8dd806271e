import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/infra/logger.js';
import { startServer, type RunningServer } from '../../src/server.js';

export interface TestServer {
  running: RunningServer;
  /** FHIR base URL of the running instance. */
  base: string;
  url: string;
  close(): Promise<void>;
}

/**
 * Boots the whole application on a random port against the real MongoDB-wire engine (MONGODB_URI) and Redis
 * (REDIS_URL), in a database of its own that is dropped on close.
 */
export async function startTestServer(env: Record<string, string> = {}, opts: { keepDb?: boolean; dbName?: string } = {}): Promise<TestServer> {
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
  return {
    running,
    base,
    url: running.url,
    async close() {
      if (!opts.keepDb) await running.mongo.db.dropDatabase().catch(() => undefined);
      await running.close();
    },
  };
}

export interface HttpResult<T = any> {
  status: number;
  headers: Headers;
  text: string;
  body: T;
}

/** Plain HTTP against the server: what a client sees, with the JSON body parsed when there is one. */
export async function http<T = any>(
  method: string,
  url: string,
  opts: { body?: unknown; raw?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  let body: string | Buffer | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/fhir+json';
  }
  const res = await fetch(url, { method, headers, body });
  const text = await res.text();
  let parsed: any;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}
