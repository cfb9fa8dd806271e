import pg from 'pg';
import type { Logger } from './logger.js';
import { FerretSqlQueries } from './ferretdb-sql.js';
import { FerretTables, ident, literal } from './ferretdb-tables.js';
import { FerretSqlAggregation, fieldExpr, numericField } from './ferretdb-aggregate.js';
import type { FieldKinds } from '../analytics/native-aggregation.js';

/**
 * Index lookups for FerretDB 1.x on PostgreSQL. FerretDB pushes an equality on a top-level field down as
 * `_jsonb->'field' @> '"value"'`, but the btree indexes it creates itself cannot answer `@>`, so every
 * search reads the whole table. A GIN index on the same expression can: measured on 50,000 documents, an
 * equality on a search array went from 54 ms (sequential scan) to 3 ms (bitmap index scan), and `_id`
 * reads likewise. This module creates those indexes in FerretDB's own tables, found through its metadata
 * table. It only adds indexes: FerretDB keeps working (slower) without them.
 */
export class FerretPostgresIndexes {
  private readonly pool: pg.Pool;
  /**
   * The search statements' own connections, with sequential scans off: PostgreSQL prices reading a field of a
   * compressed `_jsonb` as one operator, but each read decompresses the whole document (about 13 µs a row
   * for a 6 kB Patient with pglz), so on a table of a few thousand rows it scans them all where the GIN index
   * finds the 36 matches (Patient?family=: 14 ms against 2 ms). Every search statement has an index to go
   * through (a GIN search array, `_id`, or a sort index); without one, PostgreSQL still scans. JIT off too:
   * the penalty that keeps sequential scans out makes their cost pass `jit_above_cost`, and compiling a
   * lookup in the 40-row metadata table took 266 ms instead of 0.2 ms.
   */
  private readonly searchPool: pg.Pool;
  private readonly tables: FerretTables;

  constructor(
    url: string,
    /** The MongoDB database name, which FerretDB uses as the PostgreSQL schema. */
    private readonly schema: string,
    private readonly logger: Logger,
  ) {
    this.pool = new pg.Pool({ connectionString: url, max: 10 });
    this.searchPool = new pg.Pool({ connectionString: url, max: 10, options: '-c enable_seqscan=off -c jit=off' });
    this.tables = new FerretTables(this.pool, schema, logger);
  }

  /** Searches as SQL on the same tables, through the search pool. */
  searchQueries(onQuery?: (sql: string, params: unknown[]) => void): FerretSqlQueries {
    return new FerretSqlQueries(this.searchPool, this.schema, this.logger, onQuery);
  }

  /** Aggregation pipelines over `collection` (whose fields have the given kinds) as SQL on its table. */
  aggregation(collection: string, fields: FieldKinds, onQuery?: (sql: string, params: unknown[]) => void): FerretSqlAggregation {
    return new FerretSqlAggregation(this.pool, this.schema, collection, fields, this.logger, onQuery);
  }

  /** The table behind a collection, looked up afresh (a collection dropped and created again has a new one). */
  private tableOf(collection: string): Promise<string | null> {
    return this.tables.tableOf(collection, true);
  }

  /**
   * The next `limit` document ids after `after`, in order, straight from PostgreSQL (FerretDB's own btree
   * index on `_id` serves it). FerretDB itself would read and sort the whole table for `_id > x`
   * ordered by `_id`, holding it all in memory: too much for re-indexing a table of 350,000 rows.
   */
  async idsAfter(collection: string, after: string | null, limit: number): Promise<string[]> {
    const table = await this.tableOf(collection);
    if (!table) return []; // nothing stored of that type yet
    const res = await this.pool.query<{ id: string }>(
      `SELECT _jsonb->>'_id' AS id FROM ${ident(this.schema)}.${ident(table)} WHERE ($1::text IS NULL OR _jsonb->'_id' > to_jsonb($1::text)) ORDER BY _jsonb->'_id' LIMIT $2`,
      [after, limit],
    );
    return res.rows.map((r) => r.id);
  }

  /** Creates GIN indexes on `fields` of the table backing `collection` (idempotent). */
  async ensure(collection: string, fields: string[]): Promise<void> {
    const table = await this.tableOf(collection);
    if (!table) throw new Error(`FerretDB has no table for collection ${collection} in schema ${this.schema}`);
    await this.compressWithLz4(table);
    for (const field of fields) {
      const name = `${table}_mvy_${field.replace(/\W/g, '')}`.slice(0, 63);
      try {
        await this.pool.query(
          `CREATE INDEX IF NOT EXISTS ${ident(name)} ON ${ident(this.schema)}.${ident(table)} USING gin ((_jsonb->${literal(field)}) jsonb_path_ops)`,
        );
      } catch (err) {
        // IF NOT EXISTS does not cover a race: when another server process creates the same index at the same
        // moment, PostgreSQL reports a duplicate pg_class row (23505) or relation (42P07). That process builds it.
        const code = (err as { code?: string }).code;
        if (code !== '23505' && code !== '42P07') throw err;
        this.logger.debug({ collection, index: name }, 'FerretDB: GIN index created concurrently by another process');
      }
    }
    this.logger.debug({ collection, table, fields }, 'FerretDB: GIN indexes ensured');
  }

  /**
   * Btree indexes on the sort expressions of infra/ferretdb-sql.ts (`_id` by code point, `lu` as a number),
   * so a search sorted by id or last update walks an index and stops at its limit.
   */
  async ensureSortIndexes(collection: string): Promise<void> {
    const table = await this.tableOf(collection);
    if (!table) throw new Error(`FerretDB has no table for collection ${collection} in schema ${this.schema}`);
    const expressions: [string, string][] = [
      // NULLS FIRST as the queries sort ascending (MongoDB's order: missing first); descending walks it backwards.
      ['sort_id', `((_jsonb->'_id' #>> '{}') COLLATE "C") NULLS FIRST`],
      ['sort_lu', `(CASE WHEN jsonb_typeof(_jsonb->'lu') = 'number' THEN (_jsonb->'lu')::numeric END) NULLS FIRST`],
    ];
    for (const [suffix, expr] of expressions) {
      const name = `${table}_mvy_${suffix}`.slice(0, 63);
      try {
        await this.pool.query(`CREATE INDEX IF NOT EXISTS ${ident(name)} ON ${ident(this.schema)}.${ident(table)} (${expr})`);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== '23505' && code !== '42P07') throw err;
      }
    }
  }

  /**
   * Documents written from now on compressed with LZ4 instead of pglz: PostgreSQL decompresses a document for
   * every field a statement reads, FerretDB's and ours, and LZ4 does it in about half the time (a sequential
   * scan of 1,075 Patients testing two fields: 15.4 ms against 7.7 ms). Rows already stored keep pglz until
   * rewritten. Skipped where the PostgreSQL build lacks LZ4 (before 14, or built without it).
   */
  private async compressWithLz4(table: string): Promise<void> {
    const qualified = `${ident(this.schema)}.${ident(table)}`;
    try {
      const current = await this.pool.query<{ c: string }>(
        `SELECT attcompression AS c FROM pg_attribute WHERE attrelid = $1::regclass AND attname = '_jsonb'`,
        [qualified],
      );
      if (current.rows[0]?.c === 'l') return;
      await this.pool.query(`ALTER TABLE ${qualified} ALTER COLUMN _jsonb SET COMPRESSION lz4`);
    } catch (err) {
      // 0A000: LZ4 not supported by this build; 42703: no attcompression column (PostgreSQL < 14).
      this.logger.debug({ table, err: (err as Error).message }, 'FerretDB: documents stay compressed with pglz');
    }
  }

  /**
   * Btree indexes on (an equality field, a number field) in the expressions of infra/ferretdb-aggregate.ts, so
   * that `field = ANY(…) AND number >= … AND number < …` reads only the index entries in the range (idempotent).
   */
  async ensureRangeIndexes(collection: string, pairs: [equality: string, range: string][]): Promise<void> {
    const table = await this.tableOf(collection);
    if (!table) throw new Error(`FerretDB has no table for collection ${collection} in schema ${this.schema}`);
    for (const [eq, range] of pairs) {
      const name = `${table}_mvy_${eq.replace(/\W/g, '')}_${range.replace(/\W/g, '')}`.slice(0, 63);
      try {
        await this.pool.query(`CREATE INDEX IF NOT EXISTS ${ident(name)} ON ${ident(this.schema)}.${ident(table)} (${fieldExpr(eq)}, ${numericField(range)})`);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== '23505' && code !== '42P07') throw err;
      }
    }
    this.logger.debug({ collection, table, pairs }, 'FerretDB: range indexes ensured');
  }

  async close(): Promise<void> {
    await this.pool.end();
    await this.searchPool.end();
  }
}
