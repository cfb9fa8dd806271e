import type pg from 'pg';
import type { Logger } from './logger.js';
import { dbCommands, dbDuration } from './metrics.js';

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
      const started = performance.now();
      try {
        this.onQuery?.(sql, params);
        const rows = (await this.pool.query(sql, params)).rows as Record<string, unknown>[];
        // Round trips to PostgreSQL count with the driver's commands in /metrics, as command `sql`.
        dbCommands.inc({ command: 'sql', outcome: 'ok' });
        dbDuration.observe({ command: 'sql' }, (performance.now() - started) / 1000);
        return rows;
      } catch (err) {
        dbCommands.inc({ command: 'sql', outcome: 'error' });
        // A collection dropped and created again has a new table; look it up once more.
        if ((err as { code?: string }).code === '42P01' && attempt === 0) continue;
        throw err;
      }
    }
    return undefined;
  }

  /**
   * Gathers the planner's statistics of the collection's table when autovacuum would have: more rows changed
   * since the last ANALYZE than 50 + 10 % of the table (autovacuum's default threshold). For a PostgreSQL run
   * with `autovacuum = off`, as on this project's machines, where the statistics would otherwise never exist
   * and the planner, guessing, sorted a month of facts on disk instead of hashing them. Answers whether it ran.
   */
  async analyzeIfStale(collection: string): Promise<boolean> {
    const table = await this.tableOf(collection, false);
    if (!table) return false;
    const qualified = `${ident(this.schema)}.${ident(table)}`;
    const stats = await this.pool.query<{ changed: string | null; rows: string | null }>(
      `SELECT s.n_mod_since_analyze AS changed, c.reltuples AS rows FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = $1::regclass`,
      [qualified],
    );
    const changed = Number(stats.rows[0]?.changed ?? 0);
    const rows = Math.max(0, Number(stats.rows[0]?.rows ?? 0));
    if (changed <= 50 + 0.1 * rows) return false;
    await this.pool.query(`ANALYZE ${qualified}`);
    this.logger.debug({ collection, table, changed }, 'FerretDB SQL: table analyzed');
    return true;
  }

  /** The table behind `collection` (null when it has none yet); `refresh` looks it up again instead of remembering. */
  async tableOf(collection: string, refresh: boolean): Promise<string | null> {
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
