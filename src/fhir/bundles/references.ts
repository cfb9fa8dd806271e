/**
 * Rewrites every `reference` in a resource, at any depth (extensions and contained resources included),
 * through `resolve`; returns a new object and leaves the input untouched.
 * R4 3.1.0.11.2: references to an entry's fullUrl become the Type/id that entry was given.
 */
export function rewriteReferences<T>(value: T, resolve: (reference: string) => string | undefined): T {
  if (Array.isArray(value)) return value.map((v) => rewriteReferences(v, resolve)) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (k === 'reference' && typeof v === 'string') out[k] = resolve(v) ?? v;
    else out[k] = rewriteReferences(v, resolve);
  }
  return out as T;
}

/** Every `reference` string in a value, at any depth. */
export function collectReferences(value: unknown, into: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) collectReferences(v, into);
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (k === 'reference' && typeof v === 'string') into.push(v);
      else collectReferences(v, into);
    }
  }
  return into;
}

/** A conditional reference such as `Patient?identifier=x|1` (R4 3.1.0.11.2 "conditional references"). */
export function isConditionalReference(ref: string): boolean {
  return /^[A-Z][A-Za-z]+\?./.test(ref);
}
