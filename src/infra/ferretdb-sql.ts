import type pg from 'pg';
import type { CurrentDoc, VersionFields } from '../fhir/storage/mongo/documents.js';
import type { NativeFindOptions, NativeQueries } from '../fhir/search/native-queries.js';
import type { Logger } from './logger.js';
import { FerretTables, literal } from './ferretdb-tables.js';

/**
 * The search engine's queries on current documents as SQL on the PostgreSQL under FerretDB 1.x.
 *
 * Why: FerretDB pushes an equality down to PostgreSQL but then decodes every matching row (3 kB with the
 * search arrays) and sorts them in its own memory before applying the limit; `Patient?family=…&_count=20`
 * decodes every patient of that name. PostgreSQL itself can filter with our GIN indexes, sort and stop at
 * the limit, and hand back only the fields the page needs.
 *
 * FerretDB 1.24's PostgreSQL backend stores a document as `_jsonb`: the document's fields as JSON (strings
 * as strings, dates as epoch milliseconds, arrays as arrays) plus a `$s` key describing the BSON types.
 * Reads go straight to the committed rows, so they see every acknowledged write, as reads through FerretDB
 * do. Only the subset of MongoDB's query language the search engine produces is translated, with MongoDB's
 * semantics (an equality on an array matches an element; strings compare by code point, hence
 * `COLLATE "C"`; missing values sort first ascending); anything else answers `undefined` and the engine
 * uses the driver.
 */
export class FerretSqlQueries implements NativeQueries {
  private readonly tables: FerretTables;

  constructor(
    pool: pg.Pool,
    /** The MongoDB database name, which FerretDB uses as the PostgreSQL schema. */
    schema: string,
    logger: Logger,
    /** Called with each statement run (tests and benchmarks count them). */
    onQuery?: (sql: string, params: unknown[]) => void,
  ) {
    this.tables = new FerretTables(pool, schema, logger, onQuery);
  }

  async find(collection: string, filter: Record<string, unknown>, opts: NativeFindOptions): Promise<CurrentDoc[] | undefined> {
    const q = new Sql();
    const where = translate(filter, q);
    if (where === undefined) return undefined;
    let order = '';
    if (opts.sort && Object.keys(opts.sort).length) {
      const keys: string[] = [];
      // With an equality on a search array the GIN index finds the few matches, which PostgreSQL then sorts;
      // it must not walk a sort index through the whole table instead (its estimate of `@>` is a guess), so
      // the sort key is written so that no index matches it. Without one, the sort index is the way in.
      const indexedSort = !hasArrayEquality(filter);
      for (const [field, dir] of Object.entries(opts.sort)) {
        const expr = sortExpression(field, indexedSort);
        if (!expr) return undefined;
        keys.push(`${expr} ${dir === 1 ? 'ASC NULLS FIRST' : 'DESC NULLS LAST'}`);
      }
      order = ` ORDER BY ${keys.join(', ')}`;
    }
    const limit = opts.limit && opts.limit > 0 ? ` LIMIT ${Math.floor(opts.limit)}` : '';
    const select = opts.fields === 'ids' ? `jsonb_build_object('_id', _jsonb->'_id')` : `_jsonb - '$s' - 'st' - 'dh'`;
    // PostgreSQL computes the output of every matching row before sorting; a page of a sorted search shapes
    // only the rows it returns (the inner statement sorts and cuts, the outer one sorts that page again; there
    // `_jsonb` is the inner statement's column).
    const paged = order && limit && opts.fields !== 'ids';
    const rows = await this.run(
      collection,
      (table) => (paged
        ? `SELECT (${select})::text AS d FROM (SELECT _jsonb FROM ${table} WHERE ${where}${order}${limit}) AS p${order}`
        : `SELECT (${select})::text AS d FROM ${table} WHERE ${where}${order}${limit}`),
      q.params,
    );
    if (!rows) return rows;
    return rows.map((r) => {
      const d = JSON.parse(r.d as string) as CurrentDoc & { lu: unknown };
      if (typeof d.lu === 'number') d.lu = new Date(d.lu);
      return d;
    });
  }

  async count(collection: string, filter: Record<string, unknown>): Promise<number | undefined> {
    const q = new Sql();
    const where = translate(filter, q);
    if (where === undefined) return undefined;
    const rows = await this.run(collection, (table) => `SELECT count(*)::int AS n FROM ${table} WHERE ${where}`, q.params);
    return rows ? Number(rows[0]?.n ?? 0) : rows;
  }

  async byId(collection: string, id: string): Promise<VersionFields | null> {
    // The equality FerretDB's unique `_id` index is on; only the fields a read returns leave PostgreSQL.
    const rows = await this.run(
      collection,
      (table) => `SELECT _jsonb->>'t' AS t, _jsonb->>'id' AS id, _jsonb->'v' AS v, _jsonb->'lu' AS lu, _jsonb->'del' AS del, _jsonb->>'json' AS json, _jsonb->>'m' AS m FROM ${table} WHERE (_jsonb->'_id') = $1::jsonb`,
      [JSON.stringify(id)],
    );
    const r = rows?.[0];
    if (!r) return null;
    if (typeof r.v !== 'number' || typeof r.lu !== 'number' || typeof r.del !== 'boolean') throw new Error(`FerretDB SQL: unexpected stored version ${collection} ${id}`);
    return { t: r.t as string, id: r.id as string, v: r.v, lu: new Date(r.lu), del: r.del, m: r.m as VersionFields['m'], json: (r.json as string | null) ?? null };
  }

  private run(collection: string, statement: (table: string) => string, params: unknown[]): Promise<Record<string, unknown>[] | undefined> {
    return this.tables.run(collection, statement, params);
  }
}

/** Statement parameters, numbered as they are added. */
class Sql {
  readonly params: unknown[] = [];
  add(value: unknown): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }
}

/** The search arrays of a current document (see search/index-entry.ts): conditions match their elements. */
const ARRAY_FIELDS = new Set(['tk', 'st', 'sf', 'dt', 'dh', 'nm']);
/** Top-level scalar fields of a current document, with their JSON types. */
const SCALAR_FIELDS: Record<string, 'string' | 'number' | 'boolean' | 'date'> = {
  _id: 'string', id: 'string', t: 'string', m: 'string', json: 'string', v: 'number', del: 'boolean', lu: 'date',
};
/** Per-parameter sort keys (`so.birthdate`), strings. */
const SORT_KEY = /^(so|sd)\.([A-Za-z0-9_\-:.]{1,64})$/;

function fieldExpression(field: string): { expr: string; kind: 'array' | 'string' | 'number' | 'boolean' | 'date' } | undefined {
  if (ARRAY_FIELDS.has(field)) return { expr: `(_jsonb->${literal(field)})`, kind: 'array' };
  const scalar = SCALAR_FIELDS[field];
  if (scalar) return { expr: `(_jsonb->${literal(field)})`, kind: scalar };
  const m = SORT_KEY.exec(field);
  if (m) return { expr: `(_jsonb->${literal(m[1]!)}->${literal(m[2]!)})`, kind: 'string' };
  return undefined;
}

/** The ORDER BY key of a field; `indexed`: the expression of the btree sort indexes, else one no index matches. */
function sortExpression(field: string, indexed: boolean): string | undefined {
  const f = fieldExpression(field);
  if (!f || f.kind === 'array' || f.kind === 'boolean') return undefined;
  if (f.kind === 'date' || f.kind === 'number') return indexed ? numeric(f.expr) : `(${numeric(f.expr)} + 0)`;
  return indexed ? `(${f.expr} #>> '{}') COLLATE "C"` : `((${f.expr} #>> '{}') || '') COLLATE "C"`;
}

/** Whether the filter requires an element of a search array to equal one of some values (a GIN lookup). */
function hasArrayEquality(filter: Record<string, unknown>): boolean {
  return Object.entries(filter).some(([key, value]) => {
    if (key === '$and') return Array.isArray(value) && value.some((v) => isPlainObject(v) && hasArrayEquality(v));
    if (!ARRAY_FIELDS.has(key)) return false;
    if (typeof value === 'string') return true;
    return isPlainObject(value) && Object.keys(value).length === 1 && Array.isArray(value.$in) && value.$in.length > 0 && value.$in.every((v) => typeof v === 'string');
  });
}

/** A numeric field's value, NULL for anything else (PostgreSQL does not promise to test a guard first). */
function numeric(expr: string): string {
  return `(CASE WHEN jsonb_typeof(${expr}) = 'number' THEN (${expr})::numeric END)`;
}

/** A filter document as a SQL condition, or undefined when it uses anything outside the translated subset. */
function translate(filter: Record<string, unknown>, q: Sql): string | undefined {
  if (!isPlainObject(filter)) return undefined;
  const parts: string[] = [];
  for (const [key, value] of Object.entries(filter)) {
    let part: string | undefined;
    if (key === '$and' || key === '$or' || key === '$nor') {
      if (!Array.isArray(value) || value.length === 0) return undefined; // MongoDB refuses empty lists
      const subs = value.map((v) => translate(v as Record<string, unknown>, q));
      if (subs.some((s) => s === undefined)) return undefined;
      // A condition is NULL only where MongoDB's is false (a missing field), which AND and OR respect; NOT
      // needs it made false first.
      part = key === '$and' ? `(${subs.join(' AND ')})` : key === '$or' ? `(${subs.join(' OR ')})` : `NOT COALESCE((${subs.join(' OR ')}), false)`;
    } else if (key.startsWith('$')) {
      return undefined;
    } else {
      part = fieldCondition(key, value, q);
    }
    if (part === undefined) return undefined;
    parts.push(part);
  }
  return parts.length ? parts.map((p) => `(${p})`).join(' AND ') : 'TRUE';
}

function fieldCondition(field: string, value: unknown, q: Sql): string | undefined {
  const f = fieldExpression(field);
  if (!f) return undefined;
  if (isPlainObject(value) && Object.keys(value).length && Object.keys(value).every((k) => k.startsWith('$'))) {
    const parts: string[] = [];
    for (const [op, arg] of Object.entries(value)) {
      const part = operatorCondition(f, op, arg, q);
      if (part === undefined) return undefined;
      parts.push(part);
    }
    return parts.join(' AND ');
  }
  return equals(f, value, q);
}

type Field = NonNullable<ReturnType<typeof fieldExpression>>;

/** MongoDB equality: an array field matches when an element equals; null matches a missing field. */
function equals(f: Field, value: unknown, q: Sql): string | undefined {
  if (value === null) return `(${f.expr} IS NULL OR ${f.expr} = 'null'::jsonb)`;
  const json = jsonValue(f, value);
  if (json === undefined) return undefined;
  if (f.kind === 'array') return `${f.expr} @> ${q.add(JSON.stringify([json]))}::jsonb`;
  return `${f.expr} = ${q.add(JSON.stringify(json))}::jsonb`;
}

/** The stored JSON of a query value for a field, when the types agree (else undefined: not translated). */
function jsonValue(f: Field, value: unknown): string | number | boolean | undefined {
  if (value instanceof Date) return f.kind === 'date' ? value.getTime() : undefined;
  if (typeof value === 'string') return f.kind === 'array' || f.kind === 'string' ? value : undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return f.kind === 'number' ? value : undefined;
  if (typeof value === 'boolean') return f.kind === 'boolean' ? value : undefined;
  return undefined;
}

const RANGE_OPS: Record<string, string> = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' };

function operatorCondition(f: Field, op: string, arg: unknown, q: Sql): string | undefined {
  switch (op) {
    case '$eq':
      return equals(f, arg, q);
    case '$ne': {
      const eq = equals(f, arg, q);
      return eq === undefined ? undefined : `NOT COALESCE(${eq}, false)`;
    }
    case '$in':
    case '$nin': {
      if (!Array.isArray(arg)) return undefined;
      if (f.kind !== 'array' && arg.length > 1) {
        // One array parameter instead of an OR per value: PostgreSQL looks each up in an index on the field
        // (`_id`), or compares a row against the list once, where hundreds of ORs cost a comparison each.
        const values = arg.map((v) => (v === null ? undefined : jsonValue(f, v)));
        if (values.every((v) => v !== undefined)) {
          const any = `${f.expr} = ANY(${q.add(values.map((v) => JSON.stringify(v)))}::jsonb[])`;
          return op === '$in' ? any : `NOT COALESCE(${any}, false)`;
        }
      }
      const alternatives = arg.map((v) => equals(f, v, q));
      if (alternatives.some((a) => a === undefined)) return undefined;
      const any = alternatives.length ? `(${alternatives.join(' OR ')})` : 'FALSE';
      return op === '$in' ? any : `NOT COALESCE(${any}, false)`;
    }
    case '$exists':
      if (typeof arg !== 'boolean') return undefined;
      return arg ? `${f.expr} IS NOT NULL` : `${f.expr} IS NULL`;
    case '$regex': {
      if (typeof arg !== 'string' || !translatableRegex(arg)) return undefined;
      // (?p): `.` does not match a newline, as in JavaScript and PCRE; `^` still anchors at the start only.
      const p = q.add(`(?p)${arg}`);
      if (f.kind === 'array') return `EXISTS (SELECT 1 FROM jsonb_array_elements_text(${arrayOnly(f.expr)}) e WHERE e ~ ${p})`;
      if (f.kind !== 'string') return undefined;
      return `(jsonb_typeof(${f.expr}) = 'string' AND (${f.expr} #>> '{}') ~ ${p})`;
    }
    case '$elemMatch': {
      // Only ranges on the elements of a search array (one element satisfying every bound).
      if (f.kind !== 'array' || !isPlainObject(arg) || !Object.keys(arg).length) return undefined;
      const bounds: string[] = [];
      for (const [o, v] of Object.entries(arg)) {
        if (!RANGE_OPS[o] || typeof v !== 'string') return undefined;
        bounds.push(`e COLLATE "C" ${RANGE_OPS[o]} ${q.add(v)}`);
      }
      return `EXISTS (SELECT 1 FROM jsonb_array_elements_text(${arrayOnly(f.expr)}) e WHERE ${bounds.join(' AND ')})`;
    }
    default: {
      const sqlOp = RANGE_OPS[op];
      if (!sqlOp) return undefined;
      const json = jsonValue(f, arg);
      if (json === undefined) return undefined;
      if (f.kind === 'array') {
        if (typeof json !== 'string') return undefined;
        return `EXISTS (SELECT 1 FROM jsonb_array_elements_text(${arrayOnly(f.expr)}) e WHERE e COLLATE "C" ${sqlOp} ${q.add(json)})`;
      }
      if (typeof json === 'string') return `(jsonb_typeof(${f.expr}) = 'string' AND (${f.expr} #>> '{}') COLLATE "C" ${sqlOp} ${q.add(json)})`;
      if (typeof json === 'number') return `${numeric(f.expr)} ${sqlOp} ${q.add(json)}`;
      return undefined;
    }
  }
}

/** The field when it is an array, else NULL (so a stray scalar can never make the element function fail). */
function arrayOnly(expr: string): string {
  return `CASE WHEN jsonb_typeof(${expr}) = 'array' THEN ${expr} END`;
}

/**
 * Regular expressions the engine writes: anchors, literal characters (escaped metacharacters included),
 * groups of alternatives and `.*`. Their meaning is the same in PostgreSQL's ARE as in JavaScript and PCRE;
 * anything richer (classes, quantifiers, look-arounds, flags) is left to the driver.
 */
function translatableRegex(source: string): boolean {
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (c === '\\') {
      const n = source[i + 1];
      if (n === undefined || /[A-Za-z0-9]/.test(n)) return false; // \d, \w, \b, back-references: not literal
      i += 2;
      continue;
    }
    if (c === '.' && source[i + 1] === '*') {
      i += 2;
      continue;
    }
    if ('[]{}+?*.'.includes(c)) return false;
    i++;
  }
  return true;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

