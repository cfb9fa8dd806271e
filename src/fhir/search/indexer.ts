import { evalFhirPathTyped, type TypedValue } from '@medplum/core';
import { EXACT, PREFIX_MAX, PRESENT, SEP, SYS, emptyIndex, tokenKeys, type SearchIndex } from './index-entry.js';
import type { ParamDef, SearchParameterRegistry } from './parameters.js';
import { patientCompartment } from './compartment.js';
import { MAX_INSTANT, MIN_INSTANT, UCUM_SYSTEM, canonicalQuantity, dateRange, fold, instantKey, numberKey } from './values.js';

/**
 * Parameter types that get sort keys. References and composites do not: sorting by them means little, and
 * every stored element costs FerretDB decoding time on each read (about 1 ms per 5 kB document here).
 */
export const SORTABLE = new Set(['string', 'token', 'date', 'number', 'quantity', 'uri']);

/** Separates a composite's components inside one key. */
export const COMP = '\u0003';
/**
 * Token parameters also stored combined with the patient a resource belongs to (`patient SEP Patient/1
 * COMBO code SEP system SYS value`), so "this patient's glucose results" is one equality: one GIN lookup
 * on FerretDB that returns only the matching rows, instead of all the patient's rows or all glucose rows.
 */
export const PATIENT_COMBINED = ['code', 'category', 'status'];
export const COMBO = '\u0005';

/** Reference parameters that tie a resource to a patient: the compartment's links, and `patient` itself. */
export function patientLinks(type: string): string[] | undefined {
  const links = patientCompartment().get(type);
  return links ? [...new Set([...links, 'patient'])] : undefined;
}

const COMBINED_CODES = new Set(PATIENT_COMBINED);
const COMBINED_PREFIXES = PATIENT_COMBINED.map((c) => `${c}${SEP}`);
const refPrefixCache = new Map<string, string[] | undefined>();
/** `link SEP Patient/` of each of a type's patient links (memoized: asked once per resource indexed). */
function patientRefPrefixes(type: string): string[] | undefined {
  if (refPrefixCache.has(type)) return refPrefixCache.get(type);
  const prefixes = patientLinks(type)?.map((p) => `${p}${SEP}Patient/`);
  refPrefixCache.set(type, prefixes);
  return prefixes;
}
function startsWithAny(s: string, prefixes: string[]): boolean {
  for (const p of prefixes) if (s.startsWith(p)) return true;
  return false;
}

/** Marks the canonical UCUM copy of a quantity (its unit part ends with SYS + this). */
export const CANONICAL = '*';

type Obj = Record<string, unknown>;
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);

/** `Type/id` of a relative or absolute literal reference, without a version; undefined for others. */
export function normalizeReference(ref: string): string | undefined {
  const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(ref);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

/**
 * Builds the search index of resources from the registry's parameters: each parameter's FHIRPath is
 * evaluated at write time and its values normalized per type (see index-entry.ts for the encodings).
 */
/** Plain-code replacement of one parameter's FHIRPath expression: the values it selects, typed as FHIRPath would. */
export type ValueExtractor = (resource: Obj) => TypedValue[];
const extractors = new Map<string, ReadonlyMap<string, ValueExtractor>>();

/**
 * Registers plain-code extractors for a type's parameters, used instead of evaluating their FHIRPath: for
 * resources the server writes at a high rate (AuditEvent, src/audit/), where the evaluation is most of the cost.
 * Parameters without one (custom SearchParameters included) are still evaluated. Whoever registers them keeps a
 * test that both ways index the same (`new ResourceIndexer(registry, false)` evaluates everything).
 */
export function registerValueExtractors(type: string, byCode: Record<string, ValueExtractor>): void {
  extractors.set(type, new Map(Object.entries(byCode)));
}

export class ResourceIndexer {
  constructor(
    private readonly registry: SearchParameterRegistry,
    private readonly useExtractors = true,
  ) {}

  index = (resource: Obj): SearchIndex => {
    const ix = emptyIndex();
    const type = resource.resourceType;
    if (typeof type !== 'string') return ix;
    // Typed once for all parameters: converting the input is most of a FHIRPath evaluation's cost.
    const input: TypedValue[] = [{ type, value: resource }];
    const fast = this.useExtractors ? extractors.get(type) : undefined;
    let combinable = false;
    for (const p of this.registry.params(type).values()) {
      if (!p.expression) continue;
      let values: TypedValue[];
      try {
        const extract = fast?.get(p.code);
        values = extract ? extract(resource) : evalFhirPathTyped(p.expression, input);
      } catch {
        continue; // an expression that cannot apply to this content indexes nothing
      }
      if (values.length) {
        addValues(ix, p, values);
        if (COMBINED_CODES.has(p.code)) combinable = true;
      }
    }
    const refPrefixes = combinable ? patientRefPrefixes(type) : undefined;
    if (refPrefixes) {
      // Only a resource with a code, category or status is scanned: an AuditEvent, say, names hundreds of
      // patients and none of those.
      const tokens = ix.tk.filter((k) => startsWithAny(k, COMBINED_PREFIXES) && !k.endsWith(PRESENT));
      if (tokens.length) {
        const refs = ix.tk.filter((k) => startsWithAny(k, refPrefixes));
        for (const r of refs) for (const t of tokens) ix.tk.push(`${r}${COMBO}${t}`);
      }
    }
    ix.tk = [...new Set(ix.tk)];
    ix.st = [...new Set(ix.st)];
    ix.sf = [...new Set(ix.sf)];
    ix.nm = [...new Set(ix.nm)];
    return ix;
  };
}

function addValues(ix: SearchIndex, p: ParamDef, values: TypedValue[]): void {
  const before = ix.tk.length + ix.st.length + ix.dt.length + ix.nm.length;
  const sortValues: string[] = [];
  const code = p.code;
  for (const t of values) {
    switch (p.type) {
      case 'token': {
        for (const { system, value } of tokenValues(t)) {
          ix.tk.push(...tokenKeys(code, system, value));
          if (system === undefined || value !== undefined) sortValues.push(value ?? '');
        }
        // `:text` is rarer than a plain string search: only the folded text, matched by an anchored regex.
        for (const text of tokenTexts(t)) {
          const f = fold(text);
          if (f) ix.sf.push(`${code}:text${SEP}${f}`);
        }
        if (t.type === 'Identifier') {
          const v = t.value as Obj;
          const value = str(v.value);
          for (const c of arr((v.type as Obj | undefined)?.coding) as Obj[]) {
            if (value && str(c.code)) ix.tk.push(`${code}:of-type${SEP}${str(c.system) ?? ''}|${str(c.code)}|${value}`);
          }
        }
        break;
      }
      case 'reference':
        for (const key of referenceValues(t, p.targets.length > 0)) {
          ix.tk.push(`${code}${SEP}${key}`);
        }
        if (t.value && typeof t.value === 'object') {
          const ident = (t.value as Obj).identifier as Obj | undefined;
          if (ident && str(ident.value)) ix.tk.push(...tokenKeys(`${code}:identifier`, str(ident.system), str(ident.value)));
        }
        break;
      case 'string':
        for (const s of stringValues(t)) {
          addString(ix, code, s);
          ix.tk.push(`${code}${SEP}${EXACT}${s}`);
          sortValues.push(fold(s));
        }
        break;
      case 'uri':
        if (typeof t.value === 'string') {
          ix.tk.push(`${code}${SEP}${t.value}`);
          sortValues.push(t.value);
        }
        break;
      case 'date':
        for (const r of dateValues(t)) {
          ix.dt.push(`${code}${SEP}${r.lo}${SEP}${r.hi}`);
          ix.dh.push(`${code}${SEP}${r.hi}${SEP}${r.lo}`);
          setSort(ix, code, r.lo, r.hi, true);
        }
        break;
      case 'number':
        if (typeof t.value === 'number') {
          ix.nm.push(`${code}${SEP}${numberKey(t.value)}${SEP}`);
          sortValues.push(numberKey(t.value));
        }
        break;
      case 'quantity':
        for (const q of quantityValues(t)) {
          ix.nm.push(`${code}${SEP}${q}`);
          sortValues.push(q.split(SEP)[0]!);
        }
        break;
      case 'composite':
        addComposite(ix, p, t);
        break;
      default:
        break;
    }
  }
  if (SORTABLE.has(p.type)) for (const s of sortValues) setSort(ix, code, s, s);
  if (ix.tk.length + ix.st.length + ix.dt.length + ix.nm.length > before) ix.tk.push(`${code}${SEP}${PRESENT}`);
}

/**
 * Sort keys: `so` the smallest value (ascending), `sd` the largest, kept for dates only (their end differs
 * from their start); descending sorts on other types use the smallest value too, which differs from R4's
 * "largest value" only for repeating elements (e.g. a second given name).
 */
function setSort(ix: SearchIndex, code: string, lo: string, hi: string, range = false): void {
  const a = ix.so[code];
  if (a === undefined || lo < a) ix.so[code] = lo;
  if (!range) return;
  const b = ix.sd[code];
  if (b === undefined || hi > b) ix.sd[code] = hi;
}

/** Folded prefixes (equality-searchable starts-with) and the folded full value. */
function addString(ix: SearchIndex, code: string, text: string): void {
  const f = fold(text);
  if (!f) return;
  ix.sf.push(`${code}${SEP}${f}`);
  const chars = [...f];
  for (let i = 1; i <= Math.min(chars.length, PREFIX_MAX); i++) ix.st.push(`${code}${SEP}${chars.slice(0, i).join('')}`);
}

/** R4 3.1.1.4.7: a string parameter on a HumanName or Address searches its parts. */
export function stringValues(t: TypedValue): string[] {
  const v = t.value;
  if (typeof v === 'string') return [v];
  if (!v || typeof v !== 'object') return [];
  const o = v as Obj;
  const parts =
    t.type === 'HumanName'
      ? [o.family, ...arr(o.given), ...arr(o.prefix), ...arr(o.suffix), o.text]
      : t.type === 'Address'
        ? [...arr(o.line), o.city, o.district, o.state, o.postalCode, o.country, o.text]
        : [o.text, o.display, o.value];
  return parts.filter((s): s is string => typeof s === 'string' && s.length > 0);
}

type Coded = { system?: unknown; code?: unknown; value?: unknown; coding?: unknown; text?: unknown; display?: unknown };

/** System/code pairs of one token value by its FHIR type (R4 3.1.1.4.9). */
export function tokenValues(t: TypedValue): { system?: string; value?: string }[] {
  const v = t.value as Coded | string | boolean | number;
  if (typeof v === 'boolean' || typeof v === 'number') return [{ value: String(v) }];
  if (typeof v === 'string') return [{ value: v }];
  if (!v || typeof v !== 'object') return [];
  switch (t.type) {
    case 'CodeableConcept':
      return (arr(v.coding) as Coded[]).flatMap((c) => (str(c.code) || str(c.system) ? [{ system: str(c.system), value: str(c.code) }] : []));
    case 'Identifier':
      return str(v.value) ? [{ system: str(v.system), value: str(v.value) }] : [];
    case 'ContactPoint':
      return str(v.value) ? [{ system: undefined, value: str(v.value) }] : [];
    default:
      return str(v.code) ? [{ system: str(v.system), value: str(v.code) }] : [];
  }
}

/** Texts a `:text` token search matches: CodeableConcept.text, Coding.display, Identifier.type.text. */
function tokenTexts(t: TypedValue): string[] {
  const v = t.value as Coded;
  if (!v || typeof v !== 'object') return [];
  if (t.type === 'CodeableConcept') return [v.text, ...(arr(v.coding) as Coded[]).map((c) => c.display)].filter((s): s is string => typeof s === 'string');
  if (t.type === 'Coding') return typeof v.display === 'string' ? [v.display] : [];
  if (t.type === 'Identifier') return [((v as Obj).type as Coded | undefined)?.text].filter((s): s is string => typeof s === 'string');
  return [];
}

const RELATIVE_REFERENCE = /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * Keys of a reference value: `Type/id` for literal references, the URL for others. A parameter with target
 * types searches a bare id as a reference to any of them (R4 3.1.1.4.6, see conditions.ts), so a reference
 * needs no bare-id key: one key fewer per reference (a subject, an AuditEvent's entities). Only a parameter
 * that names no targets (a custom SearchParameter without `target`) keeps the bare id, to be searched by it.
 */
export function referenceValues(t: TypedValue, hasTargets: boolean): string[] {
  const v = t.value;
  const ref = typeof v === 'string' ? v : v && typeof v === 'object' ? str((v as Obj).reference) : undefined;
  if (!ref) return [];
  const keys: string[] = [];
  const withoutVersion = ref.includes('|') ? ref.replace(/\|[^|]*$/, '') : ref;
  // Most references are plain `Type/id`: one anchored test instead of the search from the end.
  const local = RELATIVE_REFERENCE.test(withoutVersion) ? withoutVersion : normalizeReference(withoutVersion);
  if (local) {
    keys.push(local);
    if (!hasTargets) keys.push(local.slice(local.indexOf('/') + 1));
  }
  if (!local || /^[a-z]+:/.test(withoutVersion)) keys.push(withoutVersion);
  return keys;
}

/** [start, end) of a date, dateTime, instant, Period or Timing value as index instants. */
export function dateValues(t: TypedValue): { lo: string; hi: string }[] {
  const v = t.value;
  if (typeof v === 'string') {
    const r = dateRange(v);
    return r ? [{ lo: instantKey(r.lo), hi: instantKey(r.hi) }] : [];
  }
  if (!v || typeof v !== 'object') return [];
  const o = v as Obj;
  if (t.type === 'Period' || 'start' in o || 'end' in o) {
    const s = str(o.start) ? dateRange(str(o.start)!) : undefined;
    const e = str(o.end) ? dateRange(str(o.end)!) : undefined;
    if (!s && !e) return [];
    return [{ lo: s ? instantKey(s.lo) : MIN_INSTANT, hi: e ? instantKey(e.hi) : MAX_INSTANT }];
  }
  if (t.type === 'Timing') return (arr(o.event) as unknown[]).flatMap((ev) => dateValues({ type: 'dateTime', value: ev }));
  return [];
}

/** `numberKey SEP system SYS code SYS unit` of a Quantity-like value, plus its canonical UCUM form. */
export function quantityValues(t: TypedValue): string[] {
  const v = t.value as Obj;
  if (!v || typeof v !== 'object' || typeof v.value !== 'number') return [];
  const value = v.value;
  const system = str(v.system) ?? '';
  const code = str(v.code) ?? str(v.currency) ?? '';
  const out = [`${numberKey(value)}${SEP}${system}${SYS}${code}${SYS}${str(v.unit) ?? ''}`];
  const canon = system === UCUM_SYSTEM ? canonicalQuantity(value, code) : undefined;
  if (canon && canon.code !== code) out.push(`${numberKey(canon.value)}${SEP}${UCUM_SYSTEM}${SYS}${canon.code}${SYS}${SYS}${CANONICAL}`);
  return out;
}

/**
 * Composite parameters (R4 3.1.1.4.12, e.g. Observation `code-value-quantity`): for each value of the
 * composite's expression, the first component's token forms joined with the second component's value,
 * in the array that serves the second component's type, so `code$gt5` is one range condition.
 */
function addComposite(ix: SearchIndex, p: ParamDef, t: TypedValue): void {
  const [c1, c2] = p.components ?? [];
  if (!c1 || !c2) return;
  let first: TypedValue[];
  let second: TypedValue[];
  try {
    first = evalFhirPathTyped(c1.expression, [t]);
    second = evalFhirPathTyped(c2.expression, [t]);
  } catch {
    return;
  }
  const heads = first.flatMap((f) => tokenValues(f)).flatMap(({ system, value }) => compositeHeads(system, value));
  for (const h of heads) {
    const prefix = `${p.code}${SEP}${h}${COMP}`;
    for (const s of second) {
      if (c2.type === 'token') for (const tv of tokenValues(s)) for (const form of compositeHeads(tv.system, tv.value)) ix.tk.push(prefix + form);
      else if (c2.type === 'quantity') for (const q of quantityValues(s)) ix.nm.push(prefix + q);
      else if (c2.type === 'date') for (const r of dateValues(s)) ix.dt.push(`${prefix}${r.lo}${SEP}${r.hi}`), ix.dh.push(`${prefix}${r.hi}${SEP}${r.lo}`);
      else if (c2.type === 'string') for (const str2 of stringValues(s)) ix.tk.push(prefix + fold(str2));
    }
  }
  if (heads.length && second.length) ix.tk.push(`${p.code}${SEP}${PRESENT}`);
}

/** The token forms a composite component can be searched by: `code`, `system|code`, `|code`. */
export function compositeHeads(system: string | undefined, code: string | undefined): string[] {
  if (code === undefined) return [];
  return [code, system !== undefined ? `${system}${SYS}${code}` : `${SYS}${code}`];
}
