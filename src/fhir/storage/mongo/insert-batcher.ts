import { MongoBulkWriteError, MongoServerError, type Collection, type Document } from 'mongodb';

interface Part {
  start: number;
  end: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}
interface Batch {
  collection: Collection<Document>;
  docs: Document[];
  parts: Part[];
}

/**
 * Group commit for inserts made outside transactions (FerretDB, where every statement is its own
 * PostgreSQL commit): while an insert into a collection is on its way, the documents other requests insert
 * into the same collection wait and then go together in one unordered `insertMany`. A lone writer is sent
 * at once, so nothing waits without a reason; under load the round trips, commits and wire writes per
 * resource written fall with the number of concurrent writers.
 *
 * Each caller learns only about its own documents: a duplicate key (or any other write error) on one of
 * them rejects that caller with a `MongoServerError` carrying the error's code, as its own `insertMany`
 * would have; the other callers' documents are written regardless (unordered). A caller with several
 * documents can therefore find some of them written when it is rejected, as with an unordered insert of
 * its own: side writes and versions are removed or settled by their writers on failure (side-write-store.ts).
 * An error that is not about particular documents (the connection lost) rejects every caller of the batch.
 */
export class InsertBatcher {
  private readonly waiting = new Map<string, Batch>();
  private readonly sending = new Set<string>();

  insert<T extends Document>(collection: Collection<T>, docs: T[]): Promise<void> {
    if (!docs.length) return Promise.resolve();
    const ns = collection.namespace;
    let batch = this.waiting.get(ns);
    if (!batch) {
      batch = { collection: collection as unknown as Collection<Document>, docs: [], parts: [] };
      this.waiting.set(ns, batch);
    }
    const start = batch.docs.length;
    batch.docs.push(...docs);
    const done = new Promise<void>((resolve, reject) => batch.parts.push({ start, end: start + docs.length, resolve, reject }));
    if (!this.sending.has(ns)) void this.drain(ns);
    return done;
  }

  /** Sends the collection's waiting batch, then whatever gathered meanwhile, until none is left. */
  private async drain(ns: string): Promise<void> {
    this.sending.add(ns);
    try {
      for (let batch = this.waiting.get(ns); batch; batch = this.waiting.get(ns)) {
        this.waiting.delete(ns);
        await send(batch);
      }
    } finally {
      this.sending.delete(ns);
    }
  }
}

async function send(batch: Batch): Promise<void> {
  try {
    if (batch.docs.length === 1) await batch.collection.insertOne(batch.docs[0]!);
    else await batch.collection.insertMany(batch.docs, { ordered: false });
  } catch (err) {
    const writeErrors = err instanceof MongoBulkWriteError ? [err.writeErrors].flat() : [];
    if (!writeErrors.length) {
      for (const p of batch.parts) p.reject(err);
      return;
    }
    for (const p of batch.parts) {
      const own = writeErrors.find((w) => w.index >= p.start && w.index < p.end);
      if (own) p.reject(new MongoServerError({ message: own.errmsg ?? 'write error', errmsg: own.errmsg, code: own.code }));
      else p.resolve();
    }
    return;
  }
  for (const p of batch.parts) p.resolve();
}
