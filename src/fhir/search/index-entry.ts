/**
 * Search index values stored beside each resource, as **scalar strings in arrays** prefixed with the
 * parameter code. Why strings rather than `{k, v}` sub-documents: FerretDB 1.x rejects `$elemMatch` with
 * field conditions (`unknown operator: k`) but supports `$elemMatch` with operators on scalar arrays, and
 * one element satisfying both bounds of a range keeps the bounds correlated on both engines. On MongoDB a
 * multikey index per array serves every parameter, far below the 64-indexes-per-collection limit.
 *
 * Encodings (SEP = U+0001 between parameter and value, SYS = U+0002 between system and code):
 * - token, any system:     `code SEP value`
 * - token with system:     `code SEP system SYS value`
 * - token without system:  `code SEP SYS value`
 * - token, system only:    `code SEP system SYS`
 */
export interface SearchIndex {
  /** Token, reference, uri, id and exact-string keys: equality and prefix (`$elemMatch` range) lookups. */
  tk: string[];
  /** Further arrays (dates, numbers, folded strings, sort keys) are added by the search indexer. */
  [field: string]: unknown;
}

export const SEP = '\u0001';
export const SYS = '\u0002';

/** Computes the search index of a resource at write time. */
export type Indexer = (resource: Record<string, unknown>) => SearchIndex;

/** Keys of one token value, covering every query form of R4 3.1.1.4.9 (`code`, `system|code`, `|code`, `system|`). */
export function tokenKeys(param: string, system: string | undefined, code: string | undefined): string[] {
  const keys: string[] = [];
  if (code !== undefined) {
    keys.push(`${param}${SEP}${code}`);
    keys.push(system !== undefined ? `${param}${SEP}${system}${SYS}${code}` : `${param}${SEP}${SYS}${code}`);
  }
  if (system !== undefined) keys.push(`${param}${SEP}${system}${SYS}`);
  return keys;
}

/** The single key a token query value looks up. */
export function tokenQueryKey(param: string, value: string): string {
  const bar = value.search(/(?<!\\)\|/);
  if (bar < 0) return `${param}${SEP}${value}`;
  const system = value.slice(0, bar);
  const code = value.slice(bar + 1);
  if (system === '') return `${param}${SEP}${SYS}${code}`;
  return code === '' ? `${param}${SEP}${system}${SYS}` : `${param}${SEP}${system}${SYS}${code}`;
}
