/**
 * Search index values stored beside each resource, as **top-level arrays of scalar strings** prefixed with
 * the parameter code.
 *
 * Why top-level scalar strings: FerretDB 1.x pushes an equality on a top-level field down to PostgreSQL
 * (`_jsonb->'tk' @> '"…"'`), which a GIN index on that expression answers (see infra/ferretdb-postgres.ts),
 * whereas a dotted path, `$in`, `$or` or a sub-document condition is filtered inside FerretDB after reading
 * the whole table. FerretDB also rejects `$elemMatch` with field conditions but accepts it with operators on
 * scalar arrays, and one element holding both ends of a date range keeps them correlated. On MongoDB each
 * array is one multikey index serving every parameter, far below the 64-indexes-per-collection limit.
 *
 * Encodings (SEP = U+0001 after the parameter code, SYS = U+0002 between system and code):
 * - tk, token any system:     `code SEP value`
 * - tk, token with system:    `code SEP system SYS value`; without system: `code SEP SYS value` (`system|` is a prefix match)
 * - tk, reference:            `code SEP Type/id`, `code SEP id`, or the absolute/canonical URL as written
 * - tk, uri:                  `code SEP uri`;  exact string (`:exact`): `code SEP = value`
 * - tk, presence (`:missing`): `code SEP PRESENT`
 * - st, string prefixes:      `code SEP p` for every prefix p (1..PREFIX_MAX characters) of the folded value
 * - sf, folded full string:   `code SEP folded`
 * - dt / dh, date ranges:     `code SEP start SEP end` / `code SEP end SEP start` (ISO instants, end exclusive)
 * - nm, number or quantity:   `code SEP numberKey SEP system SYS code SYS unit`
 * - so / sd:                  sort keys per parameter (smallest value / largest value)
 */
export interface SearchIndex {
  tk: string[];
  st: string[];
  sf: string[];
  dt: string[];
  dh: string[];
  nm: string[];
  so: Record<string, string>;
  sd: Record<string, string>;
}

/** The index fields of a current document, to exclude them when only the resource is wanted. */
export const INDEX_FIELDS = ['tk', 'st', 'sf', 'dt', 'dh', 'nm', 'so', 'sd'] as const;
export const WITHOUT_INDEX: Record<string, 0> = Object.fromEntries(INDEX_FIELDS.map((f) => [f, 0]));

export function emptyIndex(): SearchIndex {
  return { tk: [], st: [], sf: [], dt: [], dh: [], nm: [], so: {}, sd: {} };
}

export const SEP = '\u0001';
export const SYS = '\u0002';
/** Marks that a resource has a value for a parameter (`:missing=false`). */
export const PRESENT = '\u0004';
/** Exact-string marker inside tk. */
export const EXACT = '=';
/** Longest string prefix indexed for equality lookups; longer search values are checked on `sf`. */
export const PREFIX_MAX = 24;

/** Computes the search index of a resource at write time. */
export type Indexer = (resource: Record<string, unknown>) => SearchIndex;

/** Keys of one token value: the query forms `code`, `system|code` and `|code` of R4 3.1.1.4.9 (`system|` matches by prefix). */
export function tokenKeys(param: string, system: string | undefined, code: string | undefined): string[] {
  const keys: string[] = [];
  if (code !== undefined) {
    keys.push(`${param}${SEP}${code}`);
    keys.push(system !== undefined ? `${param}${SEP}${system}${SYS}${code}` : `${param}${SEP}${SYS}${code}`);
  }
  return keys;
}

/** Splits a token search value at its first unescaped `|` (R4 3.1.1.4.9); escapes removed. */
export function splitToken(value: string): { system?: string; code?: string } {
  const bar = value.search(/(?<!\\)\|/);
  const unescape = (s: string) => s.replace(/\\([,|$\\])/g, '$1');
  if (bar < 0) return { code: unescape(value) };
  return { system: unescape(value.slice(0, bar)), code: value.slice(bar + 1) === '' ? undefined : unescape(value.slice(bar + 1)) };
}

/** The single key a token query value looks up. */
export function tokenQueryKey(param: string, value: string): string {
  const { system, code } = splitToken(value);
  if (system === undefined) return `${param}${SEP}${code}`;
  if (system === '') return `${param}${SEP}${SYS}${code ?? ''}`;
  return code === undefined ? `${param}${SEP}${system}${SYS}` : `${param}${SEP}${system}${SYS}${code}`;
}
