import type { AuditEvent } from '@medplum/fhirtypes';
import { MongoBulkWriteError, type Collection } from 'mongodb';
import type { Collections, CurrentDoc } from '../fhir/storage/mongo/documents.js';
import type { Indexer } from '../fhir/search/index-entry.js';
import type { SideWrite } from '../fhir/storage/side-writes.js';
import type { Logger } from '../infra/logger.js';
import { ChainHead, type ChainFields } from './chain.js';
import './index-values.js'; // plain-code indexing of AuditEvent (the FHIRPath way costs most of a record)

export const AUDIT_TYPE = 'AuditEvent';
export type AuditDoc = CurrentDoc & ChainFields;

export interface AuditStoreOptions {
  collections: Collections;
  indexer: Indexer;
  writer: string;
  hmacKey?: string;
  flushMs: number;
  flushRecords: number;
  logger: Logger;
  /** Called before each flush: adds what is still being collected (aggregated reads). */
  beforeFlush?: () => void;
}

/**
 * Where audit records go: `fhir_AuditEvent`, as ordinary current documents of the AuditEvent type (so the
 * search engine and its indexes serve them) plus the chain fields. Two chains per process: `…:w` for the
 * records written with a resource version (side writes, same unit of work), `…:r` for the write-behind
 * records (reads, searches, sign-ins, refusals), flushed every `flushMs` or at `flushRecords` records, one
 * batch at a time in chain order, so a crash loses only the tail of the `:r` chain.
 */
export class AuditStore {
  readonly writeChain: ChainHead;
  readonly readChain: ChainHead;
  private pending: AuditEvent[] = [];
  private sealed: AuditDoc[] = [];
  private flushing?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private failingSince?: number;
  private lastWarn = 0;

  constructor(private readonly o: AuditStoreOptions) {
    this.writeChain = new ChainHead(`${o.writer}:w`, o.hmacKey);
    this.readChain = new ChainHead(`${o.writer}:r`, o.hmacKey);
  }

  get collection(): Collection<AuditDoc> {
    return this.o.collections.current(AUDIT_TYPE) as unknown as Collection<AuditDoc>;
  }

  async start(): Promise<void> {
    await this.o.collections.ready(AUDIT_TYPE);
    await this.collection.createIndex({ ac: 1, as: 1 }, { name: 'audit_chain' });
    this.timer = setInterval(() => void this.flush(), this.o.flushMs);
    this.timer.unref();
  }

  /** False while the last attempt to store write-behind records failed (requests then fail closed). */
  get healthy(): boolean {
    return this.failingSince === undefined;
  }

  /** Records not yet stored (what a crash now would lose). */
  get backlog(): number {
    return this.pending.length + this.sealed.length;
  }

  /** Queues a record to be written behind (no database round trip on the request's path). */
  enqueue(event: AuditEvent): void {
    this.pending.push(event);
    if (this.pending.length >= this.o.flushRecords) void this.flush();
  }

  /** The record of a resource version, written with it (see fhir/storage/side-writes.ts). */
  sideWrite(event: AuditEvent, av?: { seq: number; hash: string }): SideWrite & { doc: AuditDoc } {
    const doc = this.toDoc(event, this.writeChain, av);
    return { collection: this.o.collections.currentName(AUDIT_TYPE), doc: doc as AuditDoc & SideWrite['doc'] };
  }

  /** Inserts one record now (void records after a rolled-back write). */
  async insertNow(doc: AuditDoc): Promise<void> {
    await this.collection.insertOne(doc);
  }

  toDoc(event: AuditEvent, chain: ChainHead, av?: { seq: number; hash: string }): AuditDoc {
    let json = JSON.stringify(event);
    // JSON.stringify writes a NUL and a lone surrogate as escapes: only a record whose text has one is rewritten.
    if (UNSTORABLE_ESCAPE.test(json)) {
      event = storable(event);
      json = JSON.stringify(event);
    }
    const id = `${AUDIT_TYPE}/${event.id}`;
    const ix = this.o.indexer(event as unknown as Record<string, unknown>);
    const lu = new Date(event.recorded!);
    return { _id: id, t: AUDIT_TYPE, id: event.id!, v: 1, lu, del: false, json, m: 'POST', ...ix, ...chain.seal(id, json, av) };
  }

  /** Writes what is queued, one batch at a time (a second call waits for the running one, then writes the rest). */
  flush(): Promise<void> {
    this.o.beforeFlush?.();
    if (this.flushing) return this.flushing.then(() => (this.backlog ? this.flush() : undefined));
    if (!this.backlog) return Promise.resolve();
    this.flushing = this.writeBatch().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async writeBatch(): Promise<void> {
    // Sealing (hash, search index) happens here, off the request's path, in queue order.
    for (const e of this.pending.splice(0)) this.sealed.push(this.toDoc(e, this.readChain));
    while (this.sealed.length) {
      const batch = this.sealed.slice(0, 1000);
      try {
        await this.collection.insertMany(batch, { ordered: true });
        this.sealed.splice(0, batch.length);
        if (this.failingSince !== undefined) this.o.logger.info({ backlog: this.backlog }, 'audit store writable again');
        this.failingSince = undefined;
      } catch (err) {
        // What got in stays in; the rest is retried in order at the next flush.
        let inserted = err instanceof MongoBulkWriteError ? err.insertedCount : 0;
        // A duplicate key: an earlier attempt stored that record after all.
        if (err instanceof MongoBulkWriteError && err.writeErrors && [err.writeErrors].flat()[0]?.code === 11000) inserted++;
        this.sealed.splice(0, inserted);
        this.failingSince ??= Date.now();
        if (Date.now() - this.lastWarn > 10_000) {
          this.lastWarn = Date.now();
          this.o.logger.error({ err, backlog: this.backlog }, 'audit records cannot be stored');
        }
        return;
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush().catch(() => undefined);
  }
}

/** What JSON.stringify writes for a NUL or a lone surrogate (a pair is written as the characters themselves). */
const UNSTORABLE_ESCAPE = /\\u0000|\\ud[89a-f][0-9a-f]{2}/i;

/**
 * The record with every string made storable: a request can carry a NUL byte or a lone surrogate (in a URL,
 * an id, a sign-in name), which PostgreSQL's jsonb (FerretDB) refuses; one such record would otherwise stop
 * the write-behind queue for good and, failing closed, the whole server. Both become U+FFFD.
 */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
function storable<T>(value: T): T {
  if (typeof value === 'string') return value.replace(UNSTORABLE, '\uFFFD') as T;
  if (Array.isArray(value)) return value.map(storable) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, storable(v)])) as T;
  return value;
}
