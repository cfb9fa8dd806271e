import type { Collection, Db } from 'mongodb';
import { isDuplicateKey } from '../fhir/storage/mongo/version-writer.js';

/** One issued number: inserting it (unique `_id`) is what gives it to exactly one invoice. */
interface NumberClaim {
  _id: string; // INV-YYYYMM-NNNN
  month: string; // YYYYMM
  seq: number;
  invoice: string; // Invoice/<id>
  /** False until the number is on the stored Invoice; a claim left false (a crash between) is finished by `pending()`. */
  applied: boolean;
  at: Date;
}

/** The month's counter: a hint where to start (the claims decide). */
interface Counter {
  _id: string; // YYYYMM
  seq: number;
}

export const monthOf = (d: Date) => `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
export const formatNumber = (month: string, seq: number) => `INV-${month}-${String(seq).padStart(4, '0')}`;

/**
 * Invoice numbers `INV-YYYYMM-NNNN`, unique and without gaps per month, from any number of processes on an
 * engine without transactions (FerretDB). A number is allocated only for an Invoice already stored (as a draft),
 * and allocating it is a single insert of the number as a unique key: the process that inserts N+1 owns it, a
 * loser tries N+2. Nothing can be allocated and then lost: a counter `$inc` followed by a crash before the
 * invoice is written would leave a hole, whereas a claim always names its invoice, and a claim whose invoice did
 * not get the number yet (crash in between) is finished later (`pending`). The counter document (advanced with
 * `$max`, so never backwards) only saves walking from 1; the claims are the truth.
 */
export class InvoiceNumbers {
  readonly claims: Collection<NumberClaim>;
  private readonly counters: Collection<Counter>;

  constructor(db: Db) {
    this.claims = db.collection<NumberClaim>('billing_invoice_numbers');
    this.counters = db.collection<Counter>('billing_invoice_counters');
  }

  async init(): Promise<void> {
    await this.claims.createIndex({ month: 1, seq: -1 });
    await this.claims.createIndex({ invoice: 1 });
    await this.claims.createIndex({ applied: 1 });
  }

  /** The number of this invoice: the one it already has a claim on, else the month's next. */
  async allocate(invoice: string, at: Date): Promise<string> {
    const existing = await this.claims.findOne({ invoice });
    if (existing) return existing._id;
    const month = monthOf(at);
    const counter = await this.counters.findOne({ _id: month });
    const top = await this.claims.find({ month }).sort({ seq: -1 }).limit(1).next();
    let seq = Math.max(counter?.seq ?? 0, top?.seq ?? 0) + 1;
    for (let attempt = 0; attempt < 10_000; attempt++, seq++) {
      const id = formatNumber(month, seq);
      try {
        await this.claims.insertOne({ _id: id, month, seq, invoice, applied: false, at: new Date() });
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        continue;
      }
      await this.counters.updateOne({ _id: month }, { $max: { seq } }, { upsert: true }).catch(() => undefined);
      return id;
    }
    throw new Error(`No free invoice number in ${month}`);
  }

  async applied(number: string): Promise<void> {
    await this.claims.updateOne({ _id: number }, { $set: { applied: true } });
  }

  /** Claims whose invoice may not carry its number yet (older than `olderThanMs`). */
  async pending(olderThanMs: number): Promise<{ number: string; invoice: string }[]> {
    const rows = await this.claims.find({ applied: false, at: { $lt: new Date(Date.now() - olderThanMs) } }).limit(100).toArray();
    return rows.map((r) => ({ number: r._id, invoice: r.invoice }));
  }
}
