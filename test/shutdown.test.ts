import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from '@jest/globals';
import { MongoClient } from 'mongodb';
import { patient } from './support/factories.js';
import { serviceTokenSource } from '../scripts/lib/service-token.js';

/** The Bearer header of this test's requests (the server refuses anonymous ones). */
let AUTH = '';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MONGODB_URI = process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/';
const DB = `t_${randomBytes(6).toString('hex')}`;

afterAll(async () => {
  const client = new MongoClient(MONGODB_URI);
  try {
    await client.db(DB).dropDatabase();
  } finally {
    await client.close();
  }
});

interface LogLine {
  msg?: string;
  requestId?: string;
  method?: string;
  path?: string;
  status?: number;
  ms?: number;
  url?: string;
  [k: string]: unknown;
}

/** The server as a real child process, with its stdout parsed into JSON log lines as they arrive. */
class ServerProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: LogLine[] = [];
  stdout = '';
  stderr = '';
  private waiters: { test: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env } });
    let partial = '';
    this.child.stdout.on('data', (d: Buffer) => {
      this.stdout += d.toString();
      partial += d.toString();
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const text of parts) {
        if (!text.trim()) continue;
        const line = JSON.parse(text) as LogLine; // every stdout line must be JSON
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => (w.test(line) ? (w.resolve(line), false) : true));
      }
    });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  /** Resolves with the first log line (already seen or still to come) that passes `test`. */
  waitFor(test: (l: LogLine) => boolean): Promise<LogLine> {
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      this.waiters.push({ test, resolve });
      void this.exited.then((code) => reject(new Error(`server exited (${code}) before the log line came\n${this.stderr}`)));
    });
  }
}

/**
 * Starts a POST whose body is held back until `release()`: the server has received the request line and
 * headers (it answered `100 Continue`), so the request is in flight inside the server.
 */
function heldPost(url: string, body: unknown, requestId: string): Promise<{ release: () => void; response: Promise<{ status: number; body: string }> }> {
  return new Promise((resolveHeld, rejectHeld) => {
    const text = JSON.stringify(body);
    let resolveResponse!: (r: { status: number; body: string }) => void;
    let rejectResponse!: (e: unknown) => void;
    const response = new Promise<{ status: number; body: string }>((res, rej) => ((resolveResponse = res), (rejectResponse = rej)));
    const req: ClientRequest = request(url, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/fhir+json', 'content-length': Buffer.byteLength(text), expect: '100-continue', 'x-request-id': requestId, authorization: AUTH },
    });
    req.on('continue', () => resolveHeld({ release: () => req.end(text), response }));
    req.on('response', (res: IncomingMessage) => {
      let data = '';
      res.on('data', (d: Buffer) => (data += d.toString()));
      res.on('end', () => resolveResponse({ status: res.statusCode!, body: data }));
    });
    req.on('error', (err) => {
      rejectHeld(err);
      rejectResponse(err);
    });
    req.flushHeaders();
  });
}

describe('graceful shutdown', () => {
  it('drains in-flight requests on SIGTERM, exits 0, and logs one line per request without PHI', async () => {
    const family = `Zyxwvut${randomBytes(4).toString('hex')}`;
    const server = new ServerProcess({
      NODE_ENV: 'test',
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      MONGODB_URI,
      MONGODB_DB: DB,
      ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
      // Long enough that only a correct drain (not the forced close) can finish before the test times out.
      SHUTDOWN_TIMEOUT_MS: '120000',
    });
    try {
      const listening = await server.waitFor((l) => l.msg === 'Medivoy is listening');
      const base = `${listening.url}/fhir`;
      const tokens = await new MongoClient(MONGODB_URI).connect();
      AUTH = `Bearer ${await (await serviceTokenSource(tokens.db(DB), String(listening.url)))()}`;
      await tokens.close();

      // Requests completed before the signal: a create carrying the distinctive name, a read, an error.
      const done: { id: string; status: number }[] = [];
      const create = await fetch(`${base}/Patient`, {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json', 'x-request-id': 'before-create', authorization: AUTH },
        body: JSON.stringify(patient({ name: [{ family, given: ['Secret'] }], identifier: [{ system: 'urn:mrn', value: family }] })),
      });
      done.push({ id: 'before-create', status: create.status });
      const created = (await create.json()) as { id: string };
      const read = await fetch(`${base}/Patient/${created.id}?name=${family}`, { headers: { 'x-request-id': 'before-read', authorization: AUTH } });
      done.push({ id: 'before-read', status: read.status });
      await read.text();
      const missing = await fetch(`${base}/Patient/does-not-exist`, { headers: { 'x-request-id': 'before-404', authorization: AUTH } });
      done.push({ id: 'before-404', status: missing.status });
      await missing.text();

      // In flight at the signal: requests whose bodies the server is still waiting for.
      const held = await Promise.all(
        Array.from({ length: 5 }, (_, i) => heldPost(`${base}/Patient`, patient({ name: [{ family, given: [`Held${i}`] }] }), `held-${i}`)),
      );
      server.child.kill('SIGTERM');
      await server.waitFor((l) => l.signal === 'SIGTERM');
      for (const h of held) h.release();
      const results = await Promise.all(held.map((h) => h.response));

      for (const r of results) expect({ status: r.status, body: r.body.slice(0, 300) }).toMatchObject({ status: 201 });
      expect(await server.exited).toBe(0);
      expect(server.lines.some((l) => l.msg === 'stopped')).toBe(true);

      const requests = [...done, ...results.map((r, i) => ({ id: `held-${i}`, status: r.status }))];
      for (const { id, status } of requests) {
        const lines = server.lines.filter((l) => l.requestId === id);
        expect({ id, lines: lines.length }).toEqual({ id, lines: 1 });
        const line = lines[0]!;
        expect(line).toMatchObject({ msg: 'request', requestId: id, method: expect.any(String), path: expect.stringMatching(/^\/fhir\//), status });
        expect(typeof line.ms).toBe('number');
        expect(line.ms).toBeGreaterThanOrEqual(0);
      }
      // Every FHIR request logged once (the test's own token request to /auth/token is logged too).
      expect(server.lines.filter((l) => l.msg === 'request' && String(l.path).startsWith('/fhir'))).toHaveLength(requests.length);
      expect(server.lines.filter((l) => l.msg === 'request' && !String(l.path).startsWith('/fhir')).map((l) => l.path)).toEqual(['/auth/token']);

      // No body, query value or other PHI reaches the log: the family name was in bodies, a query and an identifier.
      expect(server.stdout).not.toContain(family);
      expect(server.stderr).not.toContain(family);
      expect(server.stdout).not.toContain('Secret');
    } finally {
      if (server.child.exitCode === null) server.child.kill('SIGKILL');
      await server.exited;
    }
  });
});
