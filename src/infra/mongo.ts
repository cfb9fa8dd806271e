import { MongoClient, type Db } from 'mongodb';
import type { Logger } from './logger.js';

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
export async function initMongo(opts: { uri?: string; dbName: string; logger: Logger }): Promise<MongoHandle> {
  let uri = opts.uri;
  let stopEmbedded: (() => Promise<unknown>) | undefined;
  if (!uri) {
    const { MongoMemoryReplSet } = await import('mongodb-memory-server');
    opts.logger.info('MONGODB_URI is not set: starting an embedded MongoDB replica set (mongodb-memory-server)');
    const replSet = await MongoMemoryReplSet.create({ replSet: { count: 1, storageEngine: 'wiredTiger' } });
    uri = replSet.getUri();
    stopEmbedded = () => replSet.stop();
  }
  const client = new MongoClient(uri, { maxPoolSize: 50, ignoreUndefined: true });
  await client.connect();
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
