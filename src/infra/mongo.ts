import { MongoClient, type Db } from 'mongodb';
import type { Logger } from './logger.js';
import { StartupError, redactUri } from './startup-error.js';
import { dbCommands, dbDuration } from './metrics.js';

export interface MongoHandle {
  client: MongoClient;
  db: Db;
  /** True when the engine ran a real multi-document transaction during the start-up probe. */
  supportsTransactions: boolean;
  /** Engine identification for logs and /health. */
  engine: string;
  /** FerretDB speaks the MongoDB protocol but has no multikey indexes and pushes few filters down. */
  isFerretDB: boolean;
  close(): Promise<void>;
}

/**
 * Connects to MONGODB_URI, or starts an embedded single-node replica set when none is given.
 * Transaction support is probed, not inferred: FerretDB can be told a replica-set name yet has no transactions.
 */
export async function initMongo(opts: { uri?: string; dbName: string; logger: Logger; connectTimeoutMs?: number; /** How long an operation waits for an unreachable database (then fails, and the request gets 503). */ operationWaitMs?: number }): Promise<MongoHandle> {
  let uri = opts.uri;
  let stopEmbedded: (() => Promise<unknown>) | undefined;
  if (!uri) {
    const { MongoMemoryReplSet } = await import('mongodb-memory-server');
    opts.logger.info('MONGODB_URI is not set: starting an embedded MongoDB replica set (mongodb-memory-server)');
    let replSet: InstanceType<typeof MongoMemoryReplSet>;
    // mongodb-memory-server prints a failure with its whole stack through console.warn; the message below says
    // it in one sentence, so its warnings go to the debug log instead.
    const warn = console.warn;
    console.warn = (...args: unknown[]) => opts.logger.debug({ mongodbMemoryServer: args.map(String).join(' ') }, 'mongodb-memory-server warning');
    try {
      replSet = await MongoMemoryReplSet.create({ replSet: { count: 1, storageEngine: 'wiredTiger' } });
    } catch (err) {
      throw new StartupError(embeddedFailure(err));
    } finally {
      console.warn = warn;
    }
    uri = replSet.getUri();
    stopEmbedded = () => replSet.stop();
  }
  // Requests wait at most `operationWaitMs` for a database that stopped answering (then 503), while start-up
  // keeps trying for the whole `connectTimeoutMs`.
  const connectTimeoutMs = opts.connectTimeoutMs ?? 30_000;
  const waitMs = Math.min(opts.operationWaitMs ?? 5_000, connectTimeoutMs);
  const deadline = Date.now() + connectTimeoutMs;
  let client: MongoClient;
  for (;;) {
    client = new MongoClient(uri, { maxPoolSize: 50, ignoreUndefined: true, serverSelectionTimeoutMS: Math.max(100, Math.min(waitMs, deadline - Date.now())), monitorCommands: true });
    // Every round trip counted and timed for /metrics (the driver's command monitoring costs a callback each).
    client.on('commandSucceeded', (e) => {
      dbCommands.inc({ command: e.commandName, outcome: 'ok' });
      dbDuration.observe({ command: e.commandName }, e.duration / 1000);
    });
    client.on('commandFailed', (e) => {
      dbCommands.inc({ command: e.commandName, outcome: 'error' });
      dbDuration.observe({ command: e.commandName }, e.duration / 1000);
    });
    try {
      await client.connect();
      break;
    } catch (err) {
      await client.close().catch(() => undefined);
      if (Date.now() < deadline - 100 && !/auth/i.test(shortReason(err))) continue;
      await stopEmbedded?.().catch(() => undefined);
      throw new StartupError(
        `Cannot connect to the database at ${redactUri(uri)} (${shortReason(err)}): start MongoDB (a replica set) or FerretDB there, or set MONGODB_URI to where it runs.`,
      );
    }
  }
  const db = client.db(opts.dbName);
  const buildInfo = await db.admin().command({ buildInfo: 1 }).catch(() => ({} as Record<string, unknown>));
  const engine = buildInfo.ferretdbVersion ? `FerretDB ${String(buildInfo.ferretdbVersion)}` : `MongoDB ${String(buildInfo.version ?? 'unknown')}`;
  const supportsTransactions = await probeTransactions(client, db);
  opts.logger.info({ engine, supportsTransactions, db: opts.dbName }, 'connected to the document store');
  return {
    client,
    db,
    supportsTransactions,
    engine,
    isFerretDB: Boolean(buildInfo.ferretdbVersion),
    async close() {
      await client.close();
      if (stopEmbedded) await stopEmbedded();
    },
  };
}

/**
 * Why the embedded MongoDB did not start, and the two ways out. mongodb-memory-server downloads a MongoDB
 * binary on first use into its cache (MONGOMS_DOWNLOAD_DIR, by default node_modules/.cache/mongodb-memory-server
 * or ~/.cache/mongodb-binaries); without network that download is what fails.
 */
function embeddedFailure(err: unknown): string {
  const reason = shortReason(err);
  const offline = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|download|status code/i.test(reason);
  return (
    `The embedded MongoDB could not be ${offline ? 'downloaded' : 'started'} (${reason}). ` +
    'Either set MONGODB_URI to a MongoDB replica set or FerretDB (e.g. MONGODB_URI=mongodb://127.0.0.1:27017/), ' +
    'or, for an offline machine, copy a mongod binary into the cache of mongodb-memory-server ' +
    `(${process.env.MONGOMS_DOWNLOAD_DIR ?? 'node_modules/.cache/mongodb-memory-server or ~/.cache/mongodb-binaries'}) or point MONGOMS_SYSTEM_BINARY at one.`
  );
}

/** The first line of an error's message, without the driver's or downloader's stack. */
function shortReason(err: unknown): string {
  // The downloader's errors carry the cause in `msg` (e.g. "getaddrinfo ENOTFOUND fastdl.mongodb.org").
  const detail = (err as { msg?: unknown })?.msg;
  const message = typeof detail === 'string' && detail ? detail : err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.trim().slice(0, 200) || 'unknown error';
}

async function probeTransactions(client: MongoClient, db: Db): Promise<boolean> {
  const hello = await db.admin().command({ hello: 1 }).catch(() => ({} as Record<string, unknown>));
  if (!hello.setName && hello.msg !== 'isdbgrid') return false;
  const session = client.startSession();
  try {
    const probe = db.collection<{ _id: string; at: Date }>('_txn_probe');
    await session.withTransaction(async () => {
      await probe.updateOne({ _id: 'probe' }, { $set: { at: new Date() } }, { upsert: true, session });
    });
    return true;
  } catch {
    return false;
  } finally {
    await session.endSession();
  }
}
