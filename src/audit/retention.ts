import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Collection, Db } from 'mongodb';
import type { JobDefinition } from '../jobs/job-queue.js';
import type { Logger } from '../infra/logger.js';
import type { AuditDoc } from './store.js';

export const RETENTION_JOB = 'audit-retention';
const BATCH = 1000;

/** Per chain: the last position archived and its hash, where `audit-verify` picks the chain up. */
export interface ChainMark {
  _id: string;
  seq: number;
  hash: string;
}

export const chainMarks = (db: Db): Collection<ChainMark> => db.collection<ChainMark>('audit_chain_marks');

/**
 * Moves AuditEvents older than `days` to NDJSON files in `dir` (one file of resources exactly as stored, so
 * their hashes still check, and one `.chain.ndjson` with each record's chain fields), then removes them and
 * records where each chain now starts. A crash between file and removal archives a batch twice, never loses one.
 */
export async function archiveOldAuditEvents(o: { db: Db; collection: Collection<AuditDoc>; days: number; dir: string; logger: Logger; now?: Date }): Promise<number> {
  const cutoff = new Date((o.now ?? new Date()).getTime() - o.days * 86_400_000);
  await mkdir(o.dir, { recursive: true });
  let total = 0;
  for (;;) {
    const docs = await o.collection.find({ lu: { $lt: cutoff } }, { projection: { _id: 1, json: 1, ac: 1, as: 1, ap: 1, ah: 1, av: 1 } }).sort({ ac: 1, as: 1 }).limit(BATCH).toArray();
    if (!docs.length) break;
    const name = `auditevent-${new Date().toISOString().replace(/[:.]/g, '-')}-${total}`;
    await writeFile(join(o.dir, `${name}.ndjson`), docs.map((d) => `${d.json}\n`).join(''));
    await writeFile(join(o.dir, `${name}.chain.ndjson`), docs.map((d) => `${JSON.stringify({ id: d._id, ac: d.ac, as: d.as, ap: d.ap, ah: d.ah, ...(d.av ? { av: d.av } : {}) })}\n`).join(''));
    const last = new Map<string, AuditDoc>();
    for (const d of docs) if ((last.get(d.ac)?.as ?? 0) < d.as) last.set(d.ac, d);
    for (const [chain, d] of last) {
      await chainMarks(o.db).updateOne({ _id: chain, seq: { $lt: d.as } }, { $set: { seq: d.as, hash: d.ah } }, { upsert: true }).catch((err: { code?: number }) => {
        if (err.code !== 11000) throw err; // a mark already further on
      });
    }
    for (const d of docs) await o.collection.deleteOne({ _id: d._id });
    total += docs.length;
    o.logger.info({ file: `${name}.ndjson`, records: docs.length }, 'audit events archived');
  }
  return total;
}

export function retentionJob(o: { db: Db; collection: () => Collection<AuditDoc>; days: number; dir: string; everyMs: number; logger: Logger }): JobDefinition {
  return {
    name: RETENTION_JOB,
    everyMs: o.everyMs,
    maxRetries: 2,
    handler: async () => {
      await archiveOldAuditEvents({ ...o, collection: o.collection() });
    },
  };
}
