import type { Db } from 'mongodb';
import { recordHash } from './chain.js';
import { chainMarks } from './retention.js';
import type { AuditDoc } from './store.js';

export interface BrokenLink {
  chain: string;
  seq: number;
  id?: string;
  reason: string;
}

export interface VerifyReport {
  chains: number;
  records: number;
  /** The first broken link of each chain that has one. */
  broken: BrokenLink[];
}

/**
 * Walks every chain in position order: each record's hash must match its content, its `ap` the previous
 * record's hash, and positions must follow each other, a missing position being allowed only when a void
 * record of the chain says its write was rolled back. A chain starts at 1, or after its archived part.
 */
export async function verifyAuditChains(db: Db, key?: string, collectionName = 'fhir_AuditEvent'): Promise<VerifyReport> {
  const col = db.collection<AuditDoc>(collectionName);
  const chains = (await col.distinct('ac')) as string[];
  const marks = new Map((await chainMarks(db).find().toArray()).map((m) => [m._id, m]));
  const report: VerifyReport = { chains: chains.length, records: 0, broken: [] };
  for (const chain of chains.sort()) {
    const voids = new Map<number, string>();
    for (const v of await col.find({ ac: chain, av: { $exists: true } }, { projection: { av: 1 } }).toArray()) voids.set(v.av!.seq, v.av!.hash);
    const mark = marks.get(chain);
    let expected = (mark?.seq ?? 0) + 1;
    let prev = mark?.hash ?? '';
    const cursor = col.find({ ac: chain }, { projection: { _id: 1, json: 1, ac: 1, as: 1, ap: 1, ah: 1, av: 1 } }).sort({ as: 1 });
    for await (const d of cursor) {
      report.records++;
      let broken: BrokenLink | undefined;
      while (d.as > expected) {
        const voided = voids.get(expected);
        if (voided === undefined) {
          broken = { chain, seq: expected, reason: `record ${expected} is missing (the next present record is ${d._id} at ${d.as})` };
          break;
        }
        prev = voided;
        expected++;
      }
      if (!broken && d.as < expected) broken = { chain, seq: d.as, id: d._id, reason: `position ${d.as} appears twice or before the archived part` };
      if (!broken && recordHash(key, { ac: d.ac, as: d.as, ap: d.ap, id: d._id, json: d.json ?? '', av: d.av }) !== d.ah) broken = { chain, seq: d.as, id: d._id, reason: `record ${d._id} was modified (its hash does not match its content)` };
      if (!broken && d.ap !== prev) broken = { chain, seq: d.as, id: d._id, reason: `record ${d._id} does not link to the previous record (previous hash differs)` };
      if (broken) {
        report.broken.push(broken);
        await cursor.close();
        break;
      }
      prev = d.ah;
      expected++;
    }
  }
  return report;
}
