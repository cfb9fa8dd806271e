/**
 * Group commit of inserts outside transactions (fhir/storage/mongo/insert-batcher.ts), against the real
 * database: concurrent callers' documents go in fewer round trips than callers, each caller hears only of
 * its own documents' errors, and an error that concerns no document in particular reaches every caller.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { MongoClient, type CommandStartedEvent } from 'mongodb';
import { InsertBatcher } from '../src/fhir/storage/mongo/insert-batcher.js';
import { isDuplicateKey } from '../src/fhir/storage/mongo/version-writer.js';

const uri = process.env.MONGODB_URI;
const dbName = `t_batch_${randomBytes(4).toString('hex')}`;
let client: MongoClient;
const inserts: CommandStartedEvent[] = [];

beforeAll(async () => {
  if (!uri) throw new Error('MONGODB_URI is not set');
  client = await MongoClient.connect(uri, { monitorCommands: true });
  client.on('commandStarted', (e) => {
    if (e.commandName === 'insert' && e.databaseName === dbName) inserts.push(e);
  });
});
afterAll(async () => {
  await client?.db(dbName).dropDatabase().catch(() => undefined);
  await client?.close();
});

type Doc = { _id: string; n: number };

describe('insert batcher', () => {
  it('sends a lone insert at once and groups the inserts that arrive while one is on its way', async () => {
    const col = client.db(dbName).collection<Doc>('grouped');
    const batcher = new InsertBatcher();
    inserts.length = 0;
    await batcher.insert(col, [{ _id: 'alone', n: 0 }]);
    expect(inserts.length).toBe(1);
    inserts.length = 0;
    await Promise.all(Array.from({ length: 40 }, (_, i) => batcher.insert(col, [{ _id: `c${i}`, n: i }, { _id: `c${i}b`, n: i }])));
    expect(await col.countDocuments()).toBe(81);
    // The 40 callers share one or a few round trips (how many depends on when each arrives).
    expect(inserts.length).toBeGreaterThanOrEqual(1);
    expect(inserts.length).toBeLessThan(10);
    const sizes = inserts.map((e) => (e.command.documents as unknown[]).length);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(80);
  });

  it('rejects only the caller whose document collides, with a duplicate-key error; the others are written', async () => {
    const col = client.db(dbName).collection<Doc>('collide');
    await col.insertOne({ _id: 'taken', n: -1 });
    const batcher = new InsertBatcher();
    const results = await Promise.allSettled([
      batcher.insert(col, [{ _id: 'first', n: 0 }]),
      batcher.insert(col, [{ _id: 'a1', n: 1 }]),
      batcher.insert(col, [{ _id: 'b1', n: 2 }, { _id: 'taken', n: 2 }]),
      batcher.insert(col, [{ _id: 'c1', n: 3 }]),
      batcher.insert(col, [{ _id: 'first', n: 4 }]), // collides with the first caller's, sent before it
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'rejected']);
    for (const r of results) if (r.status === 'rejected') expect(isDuplicateKey(r.reason)).toBe(true);
    expect((await col.find().sort({ _id: 1 }).toArray()).map((d) => `${d._id}:${d.n}`)).toEqual(['a1:1', 'b1:2', 'c1:3', 'first:0', 'taken:-1']);
  });

  it('rejects every caller of a batch when the insert fails as a whole', async () => {
    const closed = await MongoClient.connect(uri!);
    const col = closed.db(dbName).collection<Doc>('gone');
    await closed.close();
    const batcher = new InsertBatcher();
    const results = await Promise.allSettled([1, 2, 3].map((n) => batcher.insert(col, [{ _id: `g${n}`, n }])));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const r of results) expect(isDuplicateKey((r as PromiseRejectedResult).reason)).toBe(false);
    // And the batcher is not stuck: the next insert goes through.
    await batcher.insert(client.db(dbName).collection<Doc>('gone'), [{ _id: 'after', n: 0 }]);
    expect(await client.db(dbName).collection('gone').countDocuments()).toBe(1);
  });
});
