import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MongoClient } from 'mongodb';
import { serviceTokenSource } from '../../scripts/lib/service-token.js';
import { freePort } from './ferretdb-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The server as a real child process (`src/main.ts`, as an operator runs it), for tests that kill it, watch its
 * memory or need it to survive what would crash it. stdout is kept as JSON log lines.
 */
export class ServerProcess {
  readonly lines: Record<string, unknown>[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private constructor(readonly child: ChildProcess, readonly url: string) {
    let partial = '';
    child.stdout!.on('data', (d: Buffer) => {
      partial += d.toString();
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const text of parts) {
        try {
          this.lines.push(JSON.parse(text) as Record<string, unknown>);
        } catch {
          this.lines.push({ text });
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-20_000)));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get base(): string {
    return `${this.url}/fhir`;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts a server process with `env` on top of this process's MONGODB_URI/REDIS_URL (and the test defaults); waits for /health. */
  static async start(env: Record<string, string>): Promise<ServerProcess> {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'test', LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: String(port),
        ...(process.env.MONGODB_URI ? { MONGODB_URI: process.env.MONGODB_URI } : {}),
        ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
        ...(process.env.FERRETDB_POSTGRES_URL ? { FERRETDB_POSTGRES_URL: process.env.FERRETDB_POSTGRES_URL } : {}),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const srv = new ServerProcess(child, `http://127.0.0.1:${port}`);
    for (let i = 0; ; i++) {
      if (!srv.alive) throw new Error(`the server exited before it answered:\n${srv.stderr}`);
      try {
        if ((await fetch(`${srv.url}/ready`)).ok) return srv;
      } catch {
        /* not listening yet */
      }
      if (i > 600) throw new Error(`the server did not become ready within 60 s:\n${srv.stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A token source with full system access (a backend client registered in the server's database). */
  async tokenSource(dbName: string): Promise<{ token: () => Promise<string>; close: () => Promise<void> }> {
    const client = await new MongoClient(process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/').connect();
    const token = await serviceTokenSource(client.db(dbName), this.url);
    return { token, close: () => client.close() };
  }

  /** Resident memory of the server process in bytes (Linux /proc). */
  rss(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.child.pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.alive) return;
    this.child.kill(signal);
    await this.exited;
  }
}
