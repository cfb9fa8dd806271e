import { randomUUID } from 'node:crypto';
import { errors } from '../../outcomes.js';
import type { Collections } from './documents.js';
import { isDuplicateKey } from './version-writer.js';

const LOCK_TTL_MS = 30_000;
const WAIT_LIMIT_MS = 15_000;

/**
 * Takes the lock that serializes conditional writes on the same criteria across every server process,
 * so that parallel `If-None-Exist` creates leave exactly one resource. The lock is a document with a
 * unique `_id`; a holder that died is superseded once its lease expires. Returns the owner token.
 */
export async function acquireCriteriaLock(c: Collections, name: string): Promise<string> {
  const owner = randomUUID();
  const started = Date.now();
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    const exp = new Date(Date.now() + LOCK_TTL_MS);
    try {
      await c.locks.insertOne({ _id: name, owner, exp });
      return owner;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      const stolen = await c.locks.updateOne({ _id: name, exp: { $lt: new Date() } }, { $set: { owner, exp } });
      if (stolen.modifiedCount === 1) return owner;
    }
    if (Date.now() - started > WAIT_LIMIT_MS) throw errors.conflict('Another conditional write on the same criteria is still running; retry later');
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
  }
}

export async function releaseCriteriaLock(c: Collections, name: string, owner: string): Promise<void> {
  await c.locks.deleteOne({ _id: name, owner });
}

/** Runs `fn` holding the criteria lock. */
export async function withCriteriaLock<T>(c: Collections, name: string, fn: () => Promise<T>): Promise<T> {
  const owner = await acquireCriteriaLock(c, name);
  try {
    return await fn();
  } finally {
    await releaseCriteriaLock(c, name, owner);
  }
}
