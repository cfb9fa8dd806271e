import { createHash, createHmac, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * Tamper evidence: every audit record carries `ah` = hash(chain, seq, previous hash, id, JSON text), so editing a
 * record changes its hash and removing one breaks the link of the next. Each writer (one process, one kind of
 * record) has its own chain, so concurrent processes never contend for a chain head.
 */
export interface ChainFields {
  /** Chain (writer) id. */
  ac: string;
  /** Position in the chain, from 1. */
  as: number;
  /** Hash of the previous record of the chain ('' for the first). */
  ap: string;
  /** This record's hash. */
  ah: string;
  /** A void record: the record of this chain at `seq` (hash `hash`) was rolled back with its write. */
  av?: { seq: number; hash: string };
}

export function recordHash(key: string | undefined, f: { ac: string; as: number; ap: string; id: string; json: string; av?: { seq: number; hash: string } }): string {
  const text = `${f.ac}\n${f.as}\n${f.ap}\n${f.id}\n${f.av ? `${f.av.seq}:${f.av.hash}` : ''}\n${f.json}`;
  return (key ? createHmac('sha256', key) : createHash('sha256')).update(text).digest('hex');
}

/** A new writer id: host, process and a random part (a restarted process starts a new chain). */
export function writerId(): string {
  const day = new Date().toISOString().slice(0, 10);
  return `${hostname().replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 40)}-${process.pid}-${day}-${randomBytes(4).toString('hex')}`;
}

/** The head of one chain, in memory: links records in the order they are sealed. */
export class ChainHead {
  private seq = 0;
  private last = '';

  constructor(
    readonly id: string,
    private readonly key: string | undefined,
  ) {}

  seal(id: string, json: string, av?: { seq: number; hash: string }): ChainFields {
    const as = ++this.seq;
    const ap = this.last;
    const ah = recordHash(this.key, { ac: this.id, as, ap, id, json, av });
    this.last = ah;
    return { ac: this.id, as, ap, ah, ...(av ? { av } : {}) };
  }
}
