import type pg from 'pg';
import type { Document } from 'mongodb';
import type { FieldKind, FieldKinds, NativeAggregation } from '../analytics/native-aggregation.js';
import type { Logger } from './logger.js';
import { FerretTables, literal } from './ferretdb-tables.js';

/**
 * Aggregation pipelines as one SQL statement each on the PostgreSQL table under a FerretDB 1.x collection.
 *
 * Why: FerretDB 1.24 hands only equalities on top-level fields to PostgreSQL, then decodes every matching
 * row in its own process and evaluates ranges, `$in` and `$group` there (about 0.3 ms per document on this
 * project's machine). PostgreSQL itself can match a range on an expression index and group the rows.
 *
 * Translated: leading `$match` stages (top-level fields of the collection's declared kinds: equality, `$eq`,
 * `$in`, `$gt`/`$gte`/`$lt`/`$lte`, `$exists`; an equality on a `string[]` field matches an element), then
 * optionally one `$group` whose `_id` is null, a field path or an object of field paths and which has at
 * most one accumulator, `{ $sum: 1 }` or `{ $sum: '$field' }` of a number field, then optionally `$count`.
 * MongoDB's meaning is kept: in an object `_id` a missing field is left out and a null one is null (two
 * groups), a single-field `_id` puts missing and null in one null group; `$group` over no documents and
 * `$count` of none give no document; `$sum` adds only numbers and is exact (summed as numeric; a group whose
 * sum is not an integer within ±2^53, where the driver's floating-point order would matter, makes the whole
 * pipeline answer `undefined`); strings compare by code point (`COLLATE "C"`). Anything else answers
 * `undefined` and the caller runs the pipeline through the driver.
 */
export class FerretSqlAggregation implements NativeAggregation {
  private readonly tables: FerretTables;

  constructor(
    pool: pg.Pool,
    /** The MongoDB database name, which FerretDB uses as the PostgreSQL schema. */
    schema: string,
    private readonly collection: string,
    private readonly fields: FieldKinds,
    private readonly logger: Logger,
    onQuery?: (sql: string, params: unknown[]) => void,
  ) {
    this.tables = new FerretTables(pool, schema, logger, onQuery);
  }

  private checked = 0;
  private checking?: Promise<unknown>;

  /** The table's planner statistics brought up to date when they are stale, at most once a minute. */
  private async freshStatistics(): Promise<void> {
    if (!this.checking && Date.now() - this.checked >= STATISTICS_CHECK_MS) {
      this.checked = Date.now();
      this.checking = this.tables.analyzeIfStale(this.collection).catch((err) => {
        this.logger.warn({ err, collection: this.collection }, 'FerretDB SQL: could not analyze the table');
      }).finally(() => {
        this.checking = undefined;
      });
    }
    await this.checking;
  }

  async aggregate(pipeline: Document[]): Promise<Document[] | undefined> {
    const plan = translatePipeline(pipeline, this.fields);
    if (!plan) return undefined;
    await this.freshStatistics();
    const rows = await this.tables.run(this.collection, plan.statement, plan.params);
    return rows && plan.decode(rows);
  }
}

/** How often the facts table's statistics are checked (the check is one catalog query). */
const STATISTICS_CHECK_MS = 60_000;

export interface AggregatePlan {
  /** The statement, given the quoted table name. */
  statement: (table: string) => string;
  params: unknown[];
  /** The driver's result documents from the statement's rows (undefined: the driver must run it after all). */
  decode: (rows: Record<string, unknown>[]) => Document[] | undefined;
}

/** A number field's value as numeric, NULL for anything else: the exact expression the range indexes are built on. */
export function numericField(field: string): string {
  const f = fieldExpr(field);
  return `(CASE WHEN jsonb_typeof(${f}) = 'number' THEN (${f})::numeric END)`;
}

/** A field's stored JSON (SQL NULL when missing): the expression equality indexes are built on. */
export function fieldExpr(field: string): string {
  return `(_jsonb->${literal(field)})`;
}

/** The plan for a pipeline, or undefined when it uses anything outside the translated subset. */
export function translatePipeline(pipeline: Document[], fields: FieldKinds): AggregatePlan | undefined {
  if (!Array.isArray(pipeline) || pipeline.length === 0) return undefined;
  const q = new Params();
  const where: string[] = [];
  let i = 0;
  for (; i < pipeline.length && stageName(pipeline[i]) === '$match'; i++) {
    const c = matchCondition(pipeline[i]!.$match, fields, q);
    if (c === undefined) return undefined;
    where.push(`(${c})`);
  }
  let group: GroupPlan | undefined;
  if (i < pipeline.length && stageName(pipeline[i]) === '$group') {
    group = groupPlan(pipeline[i]!.$group, fields);
    if (!group) return undefined;
    i++;
  }
  let countName: string | undefined;
  if (i < pipeline.length && stageName(pipeline[i]) === '$count') {
    countName = pipeline[i]!.$count;
    if (!validOutputName(countName)) return undefined; // the driver reports MongoDB's error
    i++;
  }
  if (i !== pipeline.length) return undefined;
  if (!group && countName === undefined) return undefined; // a plain $match returns documents: not this module's job
  const whereSql = where.length ? ` WHERE ${where.join(' AND ')}` : '';
  const params = q.params;

  if (countName !== undefined) {
    const name = countName;
    const inner = group
      ? (table: string) => `SELECT 1 FROM ${table}${whereSql}${group!.keys.length ? ` GROUP BY ${group!.keys.map((k) => k.groupBy).join(', ')}` : ' HAVING count(*) > 0'}`
      : (table: string) => `SELECT 1 FROM ${table}${whereSql}`;
    return {
      statement: (table) => `SELECT count(*)::text AS n FROM (${inner(table)}) AS matched`,
      params,
      decode: (rows) => {
        const n = Number(rows[0]?.n ?? 0);
        return n === 0 ? [] : [{ [name]: n }];
      },
    };
  }

  const g = group!;
  const columns = g.keys.map((k, j) => `(${k.select})::text AS k${j}`);
  if (g.acc?.kind === 'count') columns.push('count(*)::text AS n');
  if (g.acc?.kind === 'sum') {
    const v = numericField(g.acc.field);
    columns.push(`COALESCE(sum(${v}), 0)::text AS n`, `COALESCE(bool_and(${v} = trunc(${v})), true) AS whole`);
  }
  if (!columns.length) columns.push('1 AS one');
  const tail = g.keys.length ? ` GROUP BY ${g.keys.map((k) => k.groupBy).join(', ')}` : ' HAVING count(*) > 0';
  return {
    statement: (table) => `SELECT ${columns.join(', ')} FROM ${table}${whereSql}${tail}`,
    params,
    decode: (rows) => {
      const out: Document[] = [];
      for (const row of rows) {
        let id: unknown = null;
        if (g.shape === 'field') id = JSON.parse(row.k0 as string);
        else if (g.shape === 'object') {
          const o: Record<string, unknown> = {};
          g.keys.forEach((k, j) => {
            const v = row[`k${j}`];
            if (v !== null && v !== undefined) o[k.name] = JSON.parse(v as string); // missing: left out, as MongoDB does
          });
          id = o;
        }
        const doc: Document = { _id: id };
        if (g.acc) {
          const n = Number(row.n);
          if (g.acc.kind === 'sum' && (row.whole === false || !Number.isSafeInteger(n))) return undefined;
          doc[g.acc.name] = n;
        }
        out.push(doc);
      }
      return out;
    },
  };
}

interface GroupKey {
  /** Output name in an object `_id`. */
  name: string;
  select: string;
  groupBy: string;
}
interface GroupPlan {
  shape: 'null' | 'field' | 'object';
  keys: GroupKey[];
  acc?: { name: string; kind: 'count' } | { name: string; kind: 'sum'; field: string };
}

function groupPlan(spec: unknown, fields: FieldKinds): GroupPlan | undefined {
  if (!isPlainObject(spec) || !Object.hasOwn(spec, '_id')) return undefined;
  const id = spec._id;
  let plan: GroupPlan;
  if (id === null) plan = { shape: 'null', keys: [] };
  else if (typeof id === 'string') {
    const field = groupField(id, fields);
    if (!field) return undefined;
    // One field: missing and null are the same (null) group.
    const expr = `COALESCE(${fieldExpr(field)}, 'null'::jsonb)`;
    plan = { shape: 'field', keys: [{ name: '_id', select: expr, groupBy: expr }] };
  } else if (isPlainObject(id)) {
    const entries = Object.entries(id);
    if (!entries.length) return undefined;
    const keys: GroupKey[] = [];
    for (const [name, path] of entries) {
      if (!validOutputName(name) || typeof path !== 'string') return undefined;
      const field = groupField(path, fields);
      if (!field) return undefined;
      // SQL NULL (missing) and JSON null stay apart: two groups, as in MongoDB.
      keys.push({ name, select: fieldExpr(field), groupBy: fieldExpr(field) });
    }
    plan = { shape: 'object', keys };
  } else return undefined;

  const accumulators = Object.entries(spec).filter(([k]) => k !== '_id');
  if (accumulators.length > 1) return undefined;
  if (accumulators.length === 1) {
    const [name, acc] = accumulators[0]!;
    if (!validOutputName(name) || !isPlainObject(acc) || Object.keys(acc).length !== 1 || !Object.hasOwn(acc, '$sum')) return undefined;
    const arg = acc.$sum;
    if (arg === 1) plan.acc = { name, kind: 'count' };
    else if (typeof arg === 'string' && arg.startsWith('$') && kindOf(fields, arg.slice(1)) === 'number') plan.acc = { name, kind: 'sum', field: arg.slice(1) };
    else return undefined;
  }
  return plan;
}

/** `$field` of a scalar field (arrays as group keys are not translated). */
function groupField(path: string, fields: FieldKinds): string | undefined {
  if (!path.startsWith('$')) return undefined;
  const field = path.slice(1);
  const kind = kindOf(fields, field);
  return kind && kind !== 'string[]' ? field : undefined;
}

function kindOf(fields: FieldKinds, field: string): FieldKind | undefined {
  return !field.startsWith('$') && !field.includes('.') && Object.hasOwn(fields, field) ? fields[field] : undefined;
}

/** Statement parameters, numbered as they are added. */
class Params {
  readonly params: unknown[] = [];
  add(value: unknown): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }
}

function matchCondition(filter: unknown, fields: FieldKinds, q: Params): string | undefined {
  if (!isPlainObject(filter)) return undefined;
  const parts: string[] = [];
  for (const [field, value] of Object.entries(filter)) {
    const kind = kindOf(fields, field);
    if (!kind) return undefined; // operators such as $and, unknown and dotted fields
    let part: string | undefined;
    if (isPlainObject(value) && Object.keys(value).some((k) => k.startsWith('$'))) {
      if (!Object.keys(value).every((k) => k.startsWith('$'))) return undefined;
      const ops: string[] = [];
      for (const [op, arg] of Object.entries(value)) {
        const c = operatorCondition(field, kind, op, arg, q);
        if (c === undefined) return undefined;
        ops.push(c);
      }
      part = ops.join(' AND ');
    } else {
      part = equality(field, kind, value, q);
    }
    if (part === undefined) return undefined;
    parts.push(`(${part})`);
  }
  return parts.length ? parts.join(' AND ') : 'TRUE';
}

/** MongoDB equality on a field of a known kind; undefined for values of another type (left to the driver). */
function equality(field: string, kind: FieldKind, value: unknown, q: Params): string | undefined {
  const f = fieldExpr(field);
  // null matches a missing field, a null and (for an array) a null element.
  if (value === null) return `(${f} IS NULL OR ${f} @> 'null'::jsonb)`;
  if (typeof value === 'string') {
    if (kind === 'string') {
      // `=` is the equality (a btree on the field serves it); `@>` says the same of a string and lets the GIN
      // indexes on the field (infra/ferretdb-postgres.ts `ensure`) serve it too.
      const p = q.add(JSON.stringify(value));
      return `(${f} = ${p}::jsonb AND ${f} @> ${p}::jsonb)`;
    }
    // A JSON array contains a string when an element equals it (and a string contains itself).
    if (kind === 'string[]') return `${f} @> ${q.add(JSON.stringify(value))}::jsonb`;
    return undefined;
  }
  if (typeof value === 'boolean') return kind === 'boolean' ? `${f} = '${value}'::jsonb` : undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return kind === 'number' ? `${numericField(field)} = ${q.add(String(value))}::numeric` : undefined;
  return undefined;
}

const RANGE: Record<string, string> = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' };

function operatorCondition(field: string, kind: FieldKind, op: string, arg: unknown, q: Params): string | undefined {
  const f = fieldExpr(field);
  switch (op) {
    case '$eq':
      return equality(field, kind, arg, q);
    case '$exists':
      return typeof arg === 'boolean' ? `${f} IS ${arg ? 'NOT ' : ''}NULL` : undefined;
    case '$in': {
      if (!Array.isArray(arg)) return undefined;
      if (arg.length === 0) return 'FALSE';
      // Strings on a string field: one `= ANY`, which an index on the field (and the ranges after it) serves.
      if (kind === 'string' && arg.every((v) => typeof v === 'string')) return `${f} = ANY(${q.add(arg.map((v) => JSON.stringify(v)))}::jsonb[])`;
      const alternatives = arg.map((v) => equality(field, kind, v, q));
      if (alternatives.some((a) => a === undefined)) return undefined;
      return `(${alternatives.join(' OR ')})`;
    }
    default: {
      const sqlOp = RANGE[op];
      if (!sqlOp) return undefined;
      // Ranges compare within a type (MongoDB's type bracketing): numbers with numbers, strings by code point.
      if (typeof arg === 'number' && Number.isFinite(arg) && kind === 'number') return `${numericField(field)} ${sqlOp} ${q.add(String(arg))}::numeric`;
      if (typeof arg === 'string' && kind === 'string') return `(jsonb_typeof(${f}) = 'string' AND (${f} #>> '{}') COLLATE "C" ${sqlOp} ${q.add(arg)})`;
      return undefined;
    }
  }
}

function stageName(stage: unknown): string | undefined {
  if (!isPlainObject(stage)) return undefined;
  const keys = Object.keys(stage);
  return keys.length === 1 ? keys[0] : undefined;
}

function validOutputName(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && !name.startsWith('$') && !name.includes('.') && name !== '_id';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
