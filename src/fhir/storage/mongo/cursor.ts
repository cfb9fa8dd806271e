import { errors } from '../../outcomes.js';

export interface Cursor {
  lu: Date;
  key: string;
}

/** Keyset cursor for history paging: stays correct while others write, unlike a skip count. */
export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.lu.getTime(), c.key])).toString('base64url');
}

export function decodeCursor(s: string): Cursor {
  try {
    const [ms, key] = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as unknown[];
    if (typeof ms !== 'number' || !Number.isFinite(ms) || typeof key !== 'string') throw new Error('shape');
    const cursor = { lu: new Date(ms), key };
    // Base64 decoding skips foreign characters: only the exact text this server issued is accepted.
    if (encodeCursor(cursor) !== s) throw new Error('not canonical');
    return cursor;
  } catch {
    throw errors.badRequest('The paging cursor is malformed or was altered; start again from the first page');
  }
}
