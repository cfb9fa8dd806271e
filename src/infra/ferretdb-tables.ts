import type pg from 'pg';
import type { Logger } from './logger.js';

/**
 * Statements on the PostgreSQL table behind a FerretDB 1.x collection. FerretDB names each collection's table
 * itself and records the name in `<schema>._ferretdb_database_metadata` (the schema is the MongoDB database's
 * name); a collection dropped and created again gets a new table.
 */
export class FerretTables {
  private readonly tables = new Map<string, string>();

  constructor(
    private readonly pool: pg.Pool,
    /** The MongoDB database name, which FerretDB uses as the PostgreSQL schema. */
    private readonly schema: string,
    private readonly logger: Logger,
    /** Called with each statement run (tests and benchmarks count them). */
    private readonly onQuery?: (sql: string, params: unknown[]) => void,
  ) {}

  /**
   * Runs `statement(table)` (given the schema-qualified, quoted table name): its rows, [] when the collection
   * does not exist (yet), undefined only if its table vanished twice in a row.
   */
  async run(collection: string, statement: (table: string) => string, params: unknown[]): Promise<Record<string, unknown>[] | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const table = await this.tableOf(collection, attempt > 0);
      if (!table) return [];
      const sql = statement(`${ident(this.schema)}.${ident(table)}`);
      try {
        this.onQuery?.(sql, params);
        return (await this.pool.query(sql, params)).rows as Record<string, unknown>[];
      } catch (err) {
        // A collection dropped and created again has a new table; look it up once more.
        if ((err as { code?: string }).code === '42P01' && attempt === 0) continue;
        throw err;
      }
    }
    return undefined;
  }

  private async tableOf(collection: string, refresh: boolean): Promise<string | null> {
    if (!refresh && this.tables.has(collection)) return this.tables.get(collection)!;
    let table: string | null = null;
    try {
      const meta = await this.pool.query<{ table: string }>(
        `SELECT _jsonb->>'table' AS table FROM ${ident(this.schema)}._ferretdb_database_metadata WHERE _jsonb->>'_id' = $1`,
        [collection],
      );
      table = meta.rows[0]?.table ?? null;
    } catch (err) {
      if ((err as { code?: string }).code !== '42P01') throw err; // no schema yet: nothing stored in this database
    }
    // Remember only tables that exist: a collection created later must be found then.
    if (table) this.tables.set(collection, table);
    else this.tables.delete(collection);
    this.logger.trace?.({ collection, table }, 'FerretDB SQL: table looked up');
    return table;
  }
}

export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
