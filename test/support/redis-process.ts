import { execFileSync } from 'node:child_process';
import { freePort } from './ferretdb-process.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A redis-server of the test's own (never the shared one), without persistence, that the test may stop and start again on the same port. */
export class RedisProcess {
  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async create(): Promise<RedisProcess> {
    const r = new RedisProcess(await freePort());
    await r.start();
    return r;
  }

  private ping(): boolean {
    try {
      return execFileSync('redis-cli', ['-p', String(this.port), 'ping'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().includes('PONG');
    } catch {
      return false;
    }
  }

  async start(): Promise<void> {
    execFileSync('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes']);
    for (let i = 0; i < 50 && !this.ping(); i++) await sleep(100);
    if (!this.ping()) throw new Error(`redis-server did not start on port ${this.port}`);
  }

  async stop(): Promise<void> {
    try {
      execFileSync('redis-cli', ['-p', String(this.port), 'shutdown', 'nosave'], { stdio: 'ignore' });
    } catch {
      /* already stopped */
    }
    for (let i = 0; i < 50 && this.ping(); i++) await sleep(100);
  }

  /** Keys matching a pattern (for checks of what the server keeps in Redis). */
  keys(pattern: string): string[] {
    return execFileSync('redis-cli', ['-p', String(this.port), '--scan', '--pattern', pattern]).toString().split('\n').filter(Boolean);
  }
}
