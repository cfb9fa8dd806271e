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
    return { lu: new Date(ms), key };
  } catch {
    throw errors.badRequest('The paging cursor is malformed or was altered; start again from the first page');
  }
}
