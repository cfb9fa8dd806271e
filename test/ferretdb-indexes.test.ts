/**
 * GIN indexes on FerretDB's PostgreSQL tables (infra/ferretdb-postgres.ts) when several server processes
 * create them at once, as two processes writing a type for the first time do: no process fails.
 * Found by running the suite against two server instances (TEST_SERVERS=2): Synthea imports got 500s.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { FerretPostgresIndexes } from '../src/infra/ferretdb-postgres.js';
import { createLogger } from '../src/infra/logger.js';

const pgUrl = process.env.FERRETDB_POSTGRES_URL;
const dbName = `t_gin_${randomBytes(4).toString('hex')}`;
let client: MongoClient;
beforeAll(async () => {
  client = await MongoClient.connect(process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/');
});
afterAll(async () => {
  await client?.db(dbName).dropDatabase().catch(() => undefined);
  await client?.close();
});

(pgUrl ? describe : describe.skip)('FerretDB GIN indexes', () => {
  it('two processes ensuring the same indexes at once both succeed, and the indexes exist; new documents are LZ4-compressed', async () => {
    const logger = createLogger('silent');
    const a = new FerretPostgresIndexes(pgUrl!, dbName, logger);
    const b = new FerretPostgresIndexes(pgUrl!, dbName, logger);
    try {
      for (let i = 0; i < 5; i++) {
        const name = `fhir_Race${i}`;
        await client.db(dbName).collection(name).insertOne({ _id: 'x' } as never);
        const results = await Promise.allSettled([a.ensure(name, ['_id', 'id', 'tk', 'st']), b.ensure(name, ['_id', 'id', 'tk', 'st'])]);
        expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : r.status))).toEqual(['fulfilled', 'fulfilled']);
      }
      const pool = new (await import('pg')).default.Pool({ connectionString: pgUrl, max: 1 });
      try {
        const rows = (await pool.query<{ n: string }>(`SELECT count(*) AS n FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE '%_mvy_%'`, [dbName])).rows;
        expect(Number(rows[0]!.n)).toBe(5 * 4);
        // Documents written from now on are compressed with LZ4 (PostgreSQL 14+ built with it, as Debian's is).
        const version = Number((await pool.query<{ v: string }>('SHOW server_version_num')).rows[0]!.v);
        if (version >= 140000) {
          const methods = (await pool.query<{ c: string }>(
            `SELECT a.attcompression AS c FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid JOIN pg_namespace n ON n.oid = t.relnamespace
              WHERE n.nspname = $1 AND t.relname LIKE 'fhir_race%' AND t.relkind = 'r' AND a.attname = '_jsonb'`, [dbName])).rows.map((r) => r.c);
          expect(methods).toEqual(['l', 'l', 'l', 'l', 'l']);
        }
      } finally {
        await pool.end();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});
