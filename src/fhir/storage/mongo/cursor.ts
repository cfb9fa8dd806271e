import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from 'mongodb';
import { errors } from '../../outcomes.js';
import { isDuplicateKey } from './version-writer.js';

export interface Cursor {
  lu: Date;
  key: string;
}

/**
 * Keyset cursors for paging (they stay correct while others write, unlike a skip count), signed with a
 * secret every server process shares, so a client can neither forge nor alter one.
 */
export class CursorCodec {
  constructor(private readonly secret: Buffer) {}

  /** The deployment's secret: created once in the database on first start, read by every process after. */
  static async forDatabase(db: Db): Promise<CursorCodec> {
    const settings = db.collection<{ _id: string; value: string }>('server_settings');
    const fresh = randomBytes(32).toString('base64');
    try {
      await settings.insertOne({ _id: 'cursor-secret', value: fresh });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    const stored = await settings.findOne({ _id: 'cursor-secret' });
    return new CursorCodec(Buffer.from(stored!.value, 'base64'));
  }

  encode(c: Cursor): string {
    return this.seal([c.lu.getTime(), c.key]);
  }

  decode(s: string): Cursor {
    const value = this.open(s);
    if (!Array.isArray(value) || typeof value[0] !== 'number' || !Number.isFinite(value[0]) || typeof value[1] !== 'string') {
      throw errors.badRequest('The paging link is malformed or was altered; start again from the first page');
    }
    return { lu: new Date(value[0]), key: value[1] };
  }

  /** Signs any JSON value (search paging cursors); `open` returns it only if the signature holds. */
  seal(data: unknown): string {
    const payload = Buffer.from(JSON.stringify(data)).toString('base64url');
    return `${payload}.${this.sign(payload)}`;
  }

  open(s: string): unknown {
    const bad = () => errors.badRequest('The paging link is malformed or was altered; start again from the first page');
    const [payload, signature, extra] = s.split('.');
    if (!payload || !signature || extra !== undefined) throw bad();
    const expected = Buffer.from(this.sign(payload));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw bad();
    try {
      return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as unknown;
    } catch {
      throw bad();
    }
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.secret).update(payload).digest('base64url').slice(0, 22);
  }
}
