import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** Where scripts/ci/ferretdb.sh caches the FerretDB binary it builds (`scripts/ci/ferretdb.sh install`). */
export function ferretdbBinary(): string | undefined {
  const bin = join(process.env.MEDIVOY_CACHE ?? join(homedir(), '.cache', 'medivoy'), 'bin', 'ferretdb-1.24.2');
  return existsSync(bin) ? bin : undefined;
}

/**
 * Why a fault test that needs its own database process cannot run here, or undefined when it can.
 * Under CI=true the caller fails instead of skipping: CI must run these tests.
 */
export function ferretdbUnavailable(): string | undefined {
  if (ferretdbBinary()) return undefined;
  return 'no FerretDB binary in ~/.cache/medivoy/bin (run `scripts/ci/ferretdb.sh install`): this fault test kills and restarts a database process of its own';
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => (sock.destroy(), resolve(true)));
    sock.once('error', () => resolve(false));
  });
}

/**
 * A FerretDB process of the test's own, on its own port and its own backend (a fresh PostgreSQL database when
 * PostgreSQL answers on 127.0.0.1:5432, else SQLite in a temporary directory), that the test may kill -9 and
 * start again on the same port and data.
 */
export class FerretdbProcess {
  private child?: ChildProcess;
  private readonly stateDir = mkdtempSync(join(tmpdir(), 'fault-ferretdb-'));
  private backend: string[] = [];
  private pgDb?: string;
  log = '';

  private constructor(readonly bin: string, readonly port: number) {}

  get uri(): string {
    return `mongodb://127.0.0.1:${this.port}/`;
  }

  static async create(): Promise<FerretdbProcess> {
    const bin = ferretdbBinary();
    if (!bin) throw new Error(ferretdbUnavailable());
    const f = new FerretdbProcess(bin, await freePort());
    const name = `medivoy_fault_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres', connectionTimeoutMillis: 2000 });
    try {
      await admin.connect();
      await admin.query(`CREATE DATABASE "${name}"`);
      f.pgDb = name;
      f.backend = ['--handler=postgresql', `--postgresql-url=postgres://postgres@127.0.0.1:5432/${name}`];
    } catch {
      f.backend = ['--handler=sqlite', `--sqlite-url=file:${f.stateDir}/`];
    } finally {
      await admin.end().catch(() => undefined);
    }
    await f.start();
    return f;
  }

  /** Starts the process (again) on the same port and data; resolves once it accepts connections. */
  async start(): Promise<void> {
    this.child = spawn(
      this.bin,
      [...this.backend, `--listen-addr=127.0.0.1:${this.port}`, '--debug-addr=-', '--telemetry=disable', `--state-dir=${this.stateDir}`, '--log-level=WARN'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child.stdout!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-4000)));
    this.child.stderr!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-4000)));
    for (let i = 0; i < 100; i++) {
      if (await portOpen(this.port)) return;
      if (this.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`FerretDB did not start on port ${this.port}:\n${this.log}`);
  }

  /** kill -9: no shutdown, connections reset mid-command. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  async close(): Promise<void> {
    await this.kill();
    if (this.pgDb) {
      const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS "${this.pgDb}" WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    }
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}
