import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

/** A free TCP port on loopback. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * Starts the server as a separate process and waits until /health answers: `src/main.ts` through tsx, or with
 * BENCH_DIST=1 the compiled `dist/main.js` exactly as `npm start` runs it (build first: `npm run build`).
 */
export async function startServerProcess(env: Record<string, string>): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, process.env.BENCH_DIST ? [new URL('../../dist/main.js', import.meta.url).pathname] : ['--import', 'tsx', new URL('../../src/main.ts', import.meta.url).pathname], {
    // Benchmarks measure the server's throughput, not the per-client rate limits (which would answer 429 to a
    // benchmark's one client); set RATE_LIMIT_ENABLED to measure with them.
    env: { RATE_LIMIT_ENABLED: 'false', ...process.env, HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited with code ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (i > 300) throw new Error('the server did not start within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
