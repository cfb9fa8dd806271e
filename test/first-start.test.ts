import { describe, expect, it } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runEntryPoint } from './support/run-entry-point.js';
import { nodeVersionProblem } from '../src/node-version.js';

/**
 * What a new user sees when the first start goes wrong: one sentence on stderr that says what to do, exit
 * code 1, no stack trace. Each case runs the real entry point as its own process.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FERRET = process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/';
const oneSentence = (stderr: string) => stderr.trim().split('\n').filter((l) => l.trim());

/** A port nothing listens on: bound and closed again. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('the Node version check', () => {
  it('names the version found and the version needed', () => {
    expect(nodeVersionProblem('20.20.2', '>=22.18.0')).toMatch(/needs Node\.js >=22\.18\.0.*this is Node\.js v20\.20\.2/);
    expect(nodeVersionProblem('22.17.9', '>=22.18.0')).toMatch(/v22\.17\.9/);
    expect(nodeVersionProblem('22.18.0', '>=22.18.0')).toBeUndefined();
    expect(nodeVersionProblem('24.1.0', '>=22.18.0')).toBeUndefined();
  });

  // The machines this project runs on ship Node 20 as /usr/bin/node: the real failure a new user meets.
  const node20 = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => existsSync(p) && /^v(1\d|2[01])\./.test(execFileSync(p, ['--version']).toString()));
  (node20 ? it : it.skip)(`stops an older Node (${node20 ?? 'none installed'}) with one line before loading anything`, async () => {
    const child = spawn(node20!, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', MONGODB_URI: FERRET } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code).toBe(1);
    expect(oneSentence(stderr)).toEqual([expect.stringMatching(/^Medivoy needs Node\.js >=22\.18\.0 \(22 LTS\), but this is Node\.js v\d+\.\d+\.\d+: install Node 22/)]);
    expect(stderr).not.toMatch(/WebSocket|ReferenceError/);
  });
});

describe('a first start that cannot reach what it needs', () => {
  it('the embedded MongoDB that cannot be downloaded: one message naming MONGODB_URI and the binary cache', async () => {
    const port = await closedPort();
    const cache = mkdtempSync(join(tmpdir(), 'mongoms-'));
    // A download address that refuses at once, so the case is the same with or without network.
    const { code, stderr } = await runEntryPoint('src/main.ts', [], {
      LOG_LEVEL: 'silent', PORT: '0', MONGOMS_DOWNLOAD_DIR: cache, MONGOMS_DOWNLOAD_MIRROR: `https://127.0.0.1:${port}`,
    });
    expect(code).toBe(1);
    const lines = oneSentence(stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^The embedded MongoDB could not be downloaded \(.*ECONNREFUSED.*\)\. Either set MONGODB_URI to a MongoDB replica set or FerretDB/);
    expect(lines[0]).toContain(cache);
  });

  it('a database that refuses the connection', async () => {
    const port = await closedPort();
    const { code, stderr } = await runEntryPoint('src/main.ts', [], { LOG_LEVEL: 'silent', PORT: '0', MONGODB_URI: `mongodb://user:secret@127.0.0.1:${port}/`, MONGODB_CONNECT_TIMEOUT_MS: '1000' });
    expect(code).toBe(1);
    expect(oneSentence(stderr)).toEqual([`Cannot connect to the database at mongodb://user:***@127.0.0.1:${port}/ (connect ECONNREFUSED 127.0.0.1:${port}): start MongoDB (a replica set) or FerretDB there, or set MONGODB_URI to where it runs.`]);
  });

  it('Redis unreachable when REDIS_URL is set', async () => {
    const port = await closedPort();
    const { code, stderr } = await runEntryPoint('src/main.ts', [], { LOG_LEVEL: 'silent', PORT: '0', MONGODB_URI: FERRET, MONGODB_DB: `t_first_${port}`, REDIS_URL: `redis://127.0.0.1:${port}` });
    expect(code).toBe(1);
    expect(oneSentence(stderr)).toEqual([`Cannot connect to Redis at redis://127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port}): start Redis there, or unset REDIS_URL to use in-process fallbacks (one process only).`]);
  });

  it('a port in use', async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const { code, stderr } = await runEntryPoint('src/main.ts', [], { LOG_LEVEL: 'silent', HOST: '127.0.0.1', PORT: String(port), MONGODB_URI: FERRET, MONGODB_DB: `t_first_port_${port}` });
      expect(code).toBe(1);
      expect(oneSentence(stderr)).toEqual([`Port ${port} on 127.0.0.1 is already in use: stop the other process or set PORT to a free port.`]);
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });
});

describe('npm start', () => {
  it('runs the compiled JavaScript (built by npm install), not the TypeScript sources', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts.start).toMatch(/node dist\/main\.js/);
    expect(pkg.scripts.prepare).toBe('npm run build');
    expect(pkg.dependencies.tsx).toBeUndefined();
    expect(existsSync(join(ROOT, 'dist/main.js'))).toBe(true);
    const child = spawn('npm', ['start', '--silent'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', MONGODB_URI: FERRET, MONGODB_DB: `t_npm_start_${process.pid}`, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' },
      detached: true,
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    try {
      const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line in 45 s:\n${stdout}`)), 45_000);
        child.stdout.on('data', () => {
          const hit = stdout.split('\n').find((l) => l.includes('Medivoy is listening'));
          if (hit) {
            clearTimeout(timer);
            resolve(JSON.parse(hit));
          }
        });
        child.on('exit', (c) => reject(new Error(`npm start exited with ${c}:\n${stdout}`)));
      });
      expect(line.runtime).toBe('compiled');
      const health = await fetch(`${line.url as string}/health`);
      expect(health.status).toBe(200);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
      await new Promise((r) => child.on('exit', r));
    }
  });
});
