/**
 * OpenTelemetry tracing, off by default and switched on by the standard OTEL_* variables: the server process
 * exports HTTP, Koa and MongoDB spans over OTLP/HTTP (JSON) to a local receiver, and its request log line
 * carries the trace id as the request id.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { tracingEnabled } from '../src/config/tracing-config.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FERRET = process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/';

interface Span { traceId: string; name: string; kind: number; scope: string }
const spans: Span[] = [];
let receiver: Server;
let receiverUrl: string;
let child: ChildProcess;
let stdout = '';
let serverUrl: string;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const payload = JSON.parse(body);
        for (const rs of payload.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) spans.push({ traceId: s.traceId, name: s.name, kind: s.kind, scope: ss.scope?.name ?? '' });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
  child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '',
      MONGODB_URI: FERRET, MONGODB_DB: `t_tracing_${process.pid}`, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', NODE_ENV: 'test',
      OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiverUrl}/v1/traces`,
      OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_SERVICE_NAME: 'medivoy-test', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none',
    },
  });
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  serverUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${stdout}`)), 45_000);
    child.stdout!.on('data', () => {
      const line = stdout.split('\n').find((l) => l.includes('Medivoy is listening'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line).url);
      }
    });
    child.on('exit', (c) => reject(new Error(`server exited with ${c}:\n${stdout}`)));
  });
}, 60_000);
afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
  }
  await new Promise<void>((r) => receiver?.close(() => r()));
});

describe('tracing', () => {
  it('is off by default and on when an exporter or endpoint is named', () => {
    expect(tracingEnabled({})).toBe(false);
    expect(tracingEnabled({ OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
    expect(tracingEnabled({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' })).toBe(false);
  });

  it('exports HTTP, Koa and MongoDB spans of a request, whose log line has the trace id as request id', async () => {
    const res = await fetch(`${serverUrl}/ready`);
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    expect(requestId).toMatch(/^[0-9a-f]{32}$/);
    // The batch processor exports within OTEL_BSP_SCHEDULE_DELAY; wait (bounded) for this trace's spans.
    for (let i = 0; i < 100 && !spans.some((s) => s.traceId === requestId && /mongodb/.test(s.scope)); i++) await new Promise((r) => setTimeout(r, 100));
    const mine = spans.filter((s) => s.traceId === requestId);
    expect(mine.map((s) => s.scope)).toEqual(expect.arrayContaining([expect.stringMatching(/instrumentation-http/), expect.stringMatching(/instrumentation-koa/), expect.stringMatching(/instrumentation-mongodb/)]));
    expect(mine.find((s) => /instrumentation-http/.test(s.scope))?.kind).toBe(2); // SERVER
    const logged = stdout.split('\n').filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l)).find((l) => l.path === '/ready');
    expect(logged?.requestId).toBe(requestId);
  });
});
