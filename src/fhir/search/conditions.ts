import { errors } from '../outcomes.js';
import { EXACT, PREFIX_MAX, PRESENT, SEP, SYS, splitToken, tokenQueryKey } from './index-entry.js';
import { CANONICAL, COMP, compositeHeads, normalizeReference } from './indexer.js';
import type { ParamDef } from './parameters.js';
import { UCUM_SYSTEM, dateRange, fold, instantKey, numberKey, numberRange, ucumFactor } from './values.js';

/** The parts of a stored current document a condition looks at. */
export interface IndexedDoc {
  _id: string;
  json: string | null;
  dt?: string[];
  nm?: string[];
  sf?: string[];
}

/**
 * One search criterion translated for one resource type: an equality on an indexed top-level field (the
 * best way in on both engines: a multikey index on MongoDB, a GIN index through FerretDB's pushdown), or
 * a general filter; plus, where the filter is only a superset, an exact check on the document.
 */
export interface Condition {
  /** Matches when `field` equals any of `values` (empty: matches nothing). */
  eq?: { field: string; values: string[] };
  filter?: Record<string, unknown>;
  /** Exact test for what the filter over-approximates. */
  post?: (doc: IndexedDoc) => boolean;
  /** The post test needs the resource text (`_text`, `_content`). */
  needsJson?: boolean;
}

/** Raised for a parameter or modifier the server does not support: lenient searches ignore it and say so. */
export class UnsupportedCriterion extends Error {}

export const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'] as const;
export type Prefix = (typeof PREFIXES)[number];

/** Alternatives split on unescaped commas (R4 3.1.1.4.8), escapes kept. */
export function splitRaw(value: string): string[] {
  return value.split(/(?<!\\),/);
}
export function unescape(v: string): string {
  return v.replace(/\\([,|$\\])/g, '$1');
}
const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function splitPrefix(raw: string, allowed: boolean): { prefix: Prefix; rest: string } {
  const p = raw.slice(0, 2) as Prefix;
  if (allowed && PREFIXES.includes(p) && !/^\d/.test(raw.slice(0, 2))) return { prefix: p, rest: raw.slice(2) };
  return { prefix: 'eq', rest: raw };
}

/** Translates `code[:modifier]=values` for a parameter of the given definition. */
export function paramCondition(def: ParamDef, modifier: string | undefined, rawValue: string, ctx: { baseUrl?: string }): Condition {
  const code = def.code;
  if (modifier === 'missing') {
    if (rawValue !== 'true' && rawValue !== 'false') throw errors.badRequest(`${code}:missing must be true or false, not '${rawValue}'`);
    const key = `${code}${SEP}${PRESENT}`;
    return rawValue === 'false' ? { eq: { field: 'tk', values: [key] } } : { filter: { tk: { $ne: key } } };
  }
  const values = splitRaw(rawValue);
  if (values.some((v) => v === '')) throw errors.badRequest(`Empty value in search parameter ${code}`);
  switch (def.type) {
    case 'token':
      return tokenCondition(code, modifier, values);
    case 'reference':
      return referenceCondition(def, modifier, values, ctx);
    case 'string':
      return stringCondition(code, modifier, values);
    case 'uri':
      return uriCondition(code, modifier, values);
    case 'date':
      noModifier(code, modifier);
      return anyOf(values.map((v) => dateCondition(code, v)));
    case 'number':
      noModifier(code, modifier);
      return anyOf(values.map((v) => numberCondition('nm', `${code}${SEP}`, code, v, undefined)));
    case 'quantity':
      noModifier(code, modifier);
      return anyOf(values.map((v) => quantityCondition(`${code}${SEP}`, code, v)));
    case 'composite':
      noModifier(code, modifier);
      return anyOf(values.map((v) => compositeCondition(def, v)));
    default:
      throw new UnsupportedCriterion(`Search parameter ${code} of type ${def.type} is not supported`);
  }
}

function noModifier(code: string, modifier: string | undefined): void {
  if (modifier) throw new UnsupportedCriterion(`Modifier :${modifier} is not supported on ${code}`);
}

/** OR of several conditions: equality sets merge; otherwise `$or` of filters with an OR of exact checks. */
export function anyOf(conds: Condition[]): Condition {
  if (conds.length === 1) return conds[0]!;
  const field = conds[0]?.eq?.field;
  if (field && conds.every((c) => c.eq?.field === field && !c.filter && !c.post)) {
    return { eq: { field, values: [...new Set(conds.flatMap((c) => c.eq!.values))] } };
  }
  const parts = conds.map(toFilter);
  const posts = conds.map((c) => c.post);
  return {
    filter: { $or: parts },
    post: posts.some(Boolean) ? (d) => conds.some((c, i) => matchesFilterApprox(c, d) && (posts[i] ? posts[i]!(d) : true)) : undefined,
    needsJson: conds.some((c) => c.needsJson),
  };
}

/**
 * For an OR whose branches have exact checks: a document passes a branch's check only if it could have
 * matched that branch's filter; branch filters on tk are re-checked here, others are trusted.
 */
function matchesFilterApprox(c: Condition, d: IndexedDoc & { tk?: string[] }): boolean {
  if (c.eq && d.tk && c.eq.field === 'tk') return c.eq.values.some((v) => d.tk!.includes(v));
  return true;
}

export function toFilter(c: Condition): Record<string, unknown> {
  const parts: Record<string, unknown>[] = [];
  if (c.eq) parts.push(c.eq.values.length === 1 ? { [c.eq.field]: c.eq.values[0] } : { [c.eq.field]: { $in: c.eq.values } });
  if (c.filter) parts.push(c.filter);
  return parts.length === 0 ? {} : parts.length === 1 ? parts[0]! : { $and: parts };
}

function tokenCondition(code: string, modifier: string | undefined, values: string[]): Condition {
  switch (modifier) {
    case undefined: {
      const keys = values.map((v) => tokenQueryKey(code, v));
      // `system|`: any code of that system, a prefix of the stored `code SEP system SYS value` keys.
      const systemOnly = keys.filter((k) => k.endsWith(SYS) && !k.endsWith(`${SEP}${SYS}`));
      if (!systemOnly.length) return { eq: { field: 'tk', values: keys } };
      const exact = keys.filter((k) => !systemOnly.includes(k));
      const regex = { tk: { $regex: `^(${systemOnly.map(escapeRegex).join('|')})` } };
      return { filter: exact.length ? { $or: [{ tk: { $in: exact } }, regex] } : regex };
    }
    case 'not': {
      const keys = values.map((v) => tokenQueryKey(code, v));
      const systemOnly = keys.filter((k) => k.endsWith(SYS) && !k.endsWith(`${SEP}${SYS}`));
      const exact = keys.filter((k) => !systemOnly.includes(k));
      const none: Record<string, unknown>[] = [];
      if (exact.length) none.push({ tk: { $in: exact } });
      if (systemOnly.length) none.push({ tk: { $regex: `^(${systemOnly.map(escapeRegex).join('|')})` } });
      return { filter: { $nor: none } };
    }
    case 'text': {
      const folded = values.map((v) => fold(unescape(v)));
      return { filter: { sf: { $regex: `^${escapeRegex(`${code}:text${SEP}`)}(${folded.map(escapeRegex).join('|')})` } } };
    }
    case 'of-type': {
      const keys = values.map((v) => {
        const parts = v.split(/(?<!\\)\|/);
        if (parts.length !== 3 || !parts[2]) throw errors.badRequest(`${code}:of-type needs system|code|value, not '${v}'`);
        return `${code}:of-type${SEP}${parts.map(unescape).join('|')}`;
      });
      return { eq: { field: 'tk', values: keys } };
    }
    default:
      throw new UnsupportedCriterion(`Modifier :${modifier} is not supported on token parameter ${code}`);
  }
}

function referenceCondition(def: ParamDef, modifier: string | undefined, values: string[], ctx: { baseUrl?: string }): Condition {
  const code = def.code;
  if (modifier === 'identifier') return { eq: { field: 'tk', values: values.map((v) => tokenQueryKey(`${code}:identifier`, v)) } };
  const typeModifier = modifier && /^[A-Z][A-Za-z]+$/.test(modifier) ? modifier : undefined;
  if (modifier && !typeModifier) throw new UnsupportedCriterion(`Modifier :${modifier} is not supported on reference parameter ${code}`);
  const keys = values.flatMap((raw) => {
    let v = unescape(raw);
    if (ctx.baseUrl && v.startsWith(`${ctx.baseUrl}/`)) v = v.slice(ctx.baseUrl.length + 1);
    v = v.replace(/\/_history\/[^/]+$/, '');
    if (typeModifier) {
      if (/^[A-Za-z0-9\-.]{1,64}$/.test(v)) return `${code}${SEP}${typeModifier}/${v}`;
      const local = normalizeReference(v);
      if (!local || !local.startsWith(`${typeModifier}/`)) throw errors.badRequest(`'${v}' is not a ${typeModifier} reference (parameter ${code}:${typeModifier})`);
      return `${code}${SEP}${local}`;
    }
    if (/^[a-z][a-z0-9+.-]*:/i.test(v)) return `${code}${SEP}${v}`; // absolute URL elsewhere, or canonical
    const local = normalizeReference(v);
    if (local && local === v) return `${code}${SEP}${local}`;
    // A bare id: a reference to any of the parameter's target types (R4 3.1.1.4.6), which is how references
    // are indexed (indexer.ts referenceValues); by the bare id itself for a parameter that names no targets.
    if (/^[A-Za-z0-9\-.]{1,64}$/.test(v)) return def.targets.length ? def.targets.map((t) => `${code}${SEP}${t}/${v}`) : [`${code}${SEP}${v}`];
    throw errors.badRequest(`'${v}' is not a reference such as Patient/123 (parameter ${code})`);
  });
  return { eq: { field: 'tk', values: keys } };
}

function stringCondition(code: string, modifier: string | undefined, values: string[]): Condition {
  const folded = values.map((v) => fold(unescape(v)));
  switch (modifier) {
    case undefined: {
      if (folded.every((f) => [...f].length <= PREFIX_MAX && f.length > 0)) return { eq: { field: 'st', values: folded.map((f) => `${code}${SEP}${f}`) } };
      return { filter: { sf: { $regex: `^${escapeRegex(code + SEP)}(${folded.map(escapeRegex).join('|')})` } } };
    }
    case 'exact':
      return { eq: { field: 'tk', values: values.map((v) => `${code}${SEP}${EXACT}${unescape(v)}`) } };
    case 'contains':
      return { filter: { sf: { $regex: `^${escapeRegex(code + SEP)}.*(${folded.map(escapeRegex).join('|')})` } } };
    default:
      throw new UnsupportedCriterion(`Modifier :${modifier} is not supported on string parameter ${code}`);
  }
}

function uriCondition(code: string, modifier: string | undefined, values: string[]): Condition {
  const uris = values.map(unescape);
  switch (modifier) {
    case undefined:
      return { eq: { field: 'tk', values: uris.map((u) => `${code}${SEP}${u}`) } };
    case 'below':
      return { filter: { tk: { $regex: `^${escapeRegex(code + SEP)}(${uris.map(escapeRegex).join('|')})` } } };
    case 'above': {
      // Every ancestor of the value at a path boundary, the value itself included.
      const keys = uris.flatMap((u) => {
        const parts = u.split('/');
        return parts.map((_, i) => parts.slice(0, i + 1).join('/')).filter((p) => /[^/:]$/.test(p) && p.length > 8);
      });
      return { eq: { field: 'tk', values: [...new Set(keys)].map((k) => `${code}${SEP}${k}`) } };
    }
    default:
      throw new UnsupportedCriterion(`Modifier :${modifier} is not supported on uri parameter ${code}`);
  }
}

/** Whether a target range [lo, hi) matches a search range [pl, ph) under a prefix (R4 3.1.1.4.6, precision ranges). */
export function rangeMatches(prefix: Prefix, lo: string, hi: string, pl: string, ph: string, apl?: string, aph?: string): boolean {
  switch (prefix) {
    case 'eq':
      return lo >= pl && hi <= ph; // the target lies fully inside the search range
    case 'ne':
      return !(lo >= pl && hi <= ph);
    case 'gt':
      return hi > ph;
    case 'lt':
      return lo < pl;
    case 'ge':
      return hi > pl;
    case 'le':
      return lo < ph;
    case 'sa':
      return lo >= ph;
    case 'eb':
      return hi <= pl;
    case 'ap':
      return lo < aph! && hi > apl!;
  }
}

/** Parses `[prefix]date` into the search range, or a 400 for a malformed date. */
export function parseDateValue(code: string, raw: string): { prefix: Prefix; pl: string; ph: string; apl: string; aph: string } {
  const { prefix, rest } = splitPrefix(raw, true);
  const r = dateRange(rest);
  if (!r) throw errors.badRequest(`'${raw}' is not a valid date search value for ${code} (expected [prefix]YYYY[-MM[-DD[Thh:mm[:ss][Z|±hh:mm]]]])`);
  // ap: 10% of the distance between the value and now, on both sides (R4 3.1.1.4.2).
  const gap = Math.max(Math.abs(Date.now() - r.lo) * 0.1, r.hi - r.lo);
  return { prefix, pl: instantKey(r.lo), ph: instantKey(r.hi), apl: instantKey(r.lo - gap), aph: instantKey(r.hi + gap) };
}

/** Bounds on the first of two parts of `prefix A SEP B` elements: A > x, A >= x, A < x, A <= x. */
const gtFirst = (prefix: string, x: string) => `${prefix}${x}${SYS}`;
const ltFirst = (prefix: string, x: string) => `${prefix}${x}`;
const upper = (prefix: string) => `${prefix}\uffff`;

export function dateCondition(code: string, raw: string, elementPrefix = `${code}${SEP}`): Condition {
  const { prefix, pl, ph, apl, aph } = parseDateValue(code, raw);
  const p = elementPrefix;
  let filter: Record<string, unknown> | undefined;
  switch (prefix) {
    case 'eq':
      filter = { dt: { $elemMatch: { $gte: `${p}${pl}`, $lt: `${p}${ph}` } } };
      break;
    case 'gt':
      filter = { dh: { $elemMatch: { $gte: gtFirst(p, ph), $lt: upper(p) } } };
      break;
    case 'ge':
      filter = { dh: { $elemMatch: { $gte: gtFirst(p, pl), $lt: upper(p) } } };
      break;
    case 'lt':
      filter = { dt: { $elemMatch: { $gte: p, $lt: ltFirst(p, pl) } } };
      break;
    case 'le':
      filter = { dt: { $elemMatch: { $gte: p, $lt: ltFirst(p, ph) } } };
      break;
    case 'sa':
      filter = { dt: { $elemMatch: { $gte: ltFirst(p, ph), $lt: upper(p) } } };
      break;
    case 'eb':
      filter = { dh: { $elemMatch: { $gte: p, $lt: gtFirst(p, pl) } } };
      break;
    case 'ap':
      filter = { dt: { $elemMatch: { $gte: p, $lt: ltFirst(p, aph) } } };
      break;
    case 'ne':
      filter = { dt: { $elemMatch: { $gte: p, $lt: upper(p) } } };
      break;
  }
  // Exact: one stored range must satisfy the whole condition (both of its ends).
  const post = (d: IndexedDoc) =>
    (d.dt ?? []).some((e) => {
      if (!e.startsWith(p)) return false;
      const rest = e.slice(p.length);
      if (rest.includes(COMP)) return false;
      const [lo, hi] = rest.split(SEP);
      return rangeMatches(prefix, lo!, hi!, pl, ph, apl, aph);
    });
  return { filter, post };
}

/** `_lastUpdated` against the stored instant (a point, so its range is one millisecond). */
export function lastUpdatedCondition(raw: string): Condition {
  const { prefix, pl, ph, apl, aph } = parseDateValue('_lastUpdated', raw);
  const d = (s: string) => new Date(s);
  switch (prefix) {
    case 'eq':
      return { filter: { lu: { $gte: d(pl), $lt: d(ph) } } };
    case 'ne':
      return { filter: { $or: [{ lu: { $lt: d(pl) } }, { lu: { $gte: d(ph) } }] } };
    case 'gt':
    case 'sa':
      return { filter: { lu: { $gte: d(ph) } } };
    case 'ge':
      return { filter: { lu: { $gte: d(pl) } } };
    case 'lt':
    case 'eb':
      return { filter: { lu: { $lt: d(pl) } } };
    case 'le':
      return { filter: { lu: { $lt: d(ph) } } };
    case 'ap':
      return { filter: { lu: { $gte: d(apl), $lt: d(aph) } } };
  }
}

/**
 * Number comparisons on `nm` elements `prefix numberKey SEP unit…`: the number leads each element, so a
 * range on one element is exact for the number; `unitOk` then checks the unit part of the same element.
 */
function numberCondition(field: 'nm', p: string, code: string, raw: string, unitOk: ((unit: string) => boolean) | undefined, scale = 1): Condition {
  const { prefix, rest } = splitPrefix(raw, true);
  const n = numberRange(rest);
  if (!n) throw errors.badRequest(`'${raw}' is not a valid number search value for ${code}`);
  const value = n.value * scale;
  const [lo, hi] = [n.lo * scale, n.hi * scale];
  const K = numberKey;
  let range: [number, boolean, number, boolean] | undefined; // [from, inclusive, to, inclusive]
  switch (prefix) {
    case 'eq':
      range = [lo, true, hi, false];
      break;
    case 'gt':
    case 'sa':
      range = [value, false, Infinity, true];
      break;
    case 'ge':
      range = [value, true, Infinity, true];
      break;
    case 'lt':
    case 'eb':
      range = [-Infinity, true, value, false];
      break;
    case 'le':
      range = [-Infinity, true, value, true];
      break;
    case 'ap':
      range = [value - Math.abs(value) * 0.1, true, value + Math.abs(value) * 0.1, true];
      break;
    case 'ne':
      range = undefined;
      break;
  }
  const inRange = (x: string) => {
    if (!range) return x < K(lo) || x >= K(hi);
    const [f, fi, t, ti] = range;
    return (fi ? x >= K(f) : x > K(f)) && (ti ? x <= K(t) : x < K(t));
  };
  const filter: Record<string, unknown> = range
    ? { [field]: { $elemMatch: { $gte: `${p}${K(range[0])}${range[1] ? '' : SYS}`, $lt: `${p}${K(range[2])}${range[3] ? SYS : ''}` } } }
    : { [field]: { $elemMatch: { $gte: p, $lt: upper(p) } } };
  const post = (d: IndexedDoc) =>
    (d.nm ?? []).some((e) => {
      if (!e.startsWith(p)) return false;
      const rest2 = e.slice(p.length);
      const [num, unit] = [rest2.slice(0, 16), rest2.slice(17)];
      if (rest2.length < 16 || (rest2.length > 16 && rest2[16] !== SEP)) return false;
      return inRange(num) && (!unitOk || unitOk(unit ?? ''));
    });
  return { filter, post };
}

/** `[prefix]number[|system|code]` (R4 3.1.1.4.7); UCUM values we know are compared in canonical units. */
function quantityCondition(p: string, code: string, raw: string): Condition {
  const parts = raw.split(/(?<!\\)\|/).map(unescape);
  if (parts.length !== 1 && parts.length !== 3) throw errors.badRequest(`'${raw}' is not a quantity search value (number or number|system|code) for ${code}`);
  const [num, system, unitCode] = parts as [string, string | undefined, string | undefined];
  // A bare number compares the values as recorded, not their canonical UCUM copies.
  if (!system && !unitCode) return numberCondition('nm', p, code, num, (u) => !u.endsWith(`${SYS}${CANONICAL}`));
  const canon = system === UCUM_SYSTEM && unitCode ? ucumFactor(unitCode) : undefined;
  if (canon) {
    // Canonical copies and values recorded in the canonical unit itself (which get no copy).
    return numberCondition('nm', p, code, num, (u) => u.split(SYS)[0] === UCUM_SYSTEM && u.split(SYS)[1] === canon.canonical, canon.factor);
  }
  return numberCondition('nm', p, code, num, (u) => {
    if (u.endsWith(`${SYS}${CANONICAL}`)) return false;
    const [s, c, un] = u.split(SYS);
    if (system) return s === system && c === unitCode;
    return c === unitCode || un === unitCode;
  });
}

/** `first$second` for a two-component composite whose first component is a token. */
function compositeCondition(def: ParamDef, raw: string): Condition {
  const [c1, c2] = def.components ?? [];
  const pieces = raw.split(/(?<!\\)\$/);
  if (!c1 || !c2 || pieces.length !== 2 || c1.type !== 'token') {
    if (pieces.length !== 2) throw errors.badRequest(`'${raw}' is not a composite value such as code$value for ${def.code}`);
    throw new UnsupportedCriterion(`Composite parameter ${def.code} is not supported`);
  }
  const { system, code } = splitToken(pieces[0]!);
  if (code === undefined) throw errors.badRequest(`The first component of ${def.code} needs a code`);
  const head = system === undefined ? code : compositeHeads(system === '' ? undefined : system, code)[1]!;
  const p = `${def.code}${SEP}${head}${COMP}`;
  switch (c2.type) {
    case 'token': {
      const t = splitToken(pieces[1]!);
      if (t.code === undefined) throw errors.badRequest(`The second component of ${def.code} needs a code`);
      const form = t.system === undefined ? t.code : compositeHeads(t.system === '' ? undefined : t.system, t.code)[1]!;
      return { eq: { field: 'tk', values: [p + form] } };
    }
    case 'quantity':
      return quantityCondition(p, def.code, pieces[1]!);
    case 'date':
      return dateCondition(def.code, pieces[1]!, p);
    case 'string':
      return { eq: { field: 'tk', values: [p + fold(unescape(pieces[1]!))] } };
    default:
      throw new UnsupportedCriterion(`Composite parameter ${def.code} is not supported`);
  }
}

/** `_text` / `_content`: every word must occur in the narrative / the resource (a simple full-text match). */
export function textCondition(code: '_text' | '_content', raw: string): Condition {
  const alternatives = splitRaw(raw).map((v) => fold(unescape(v)).split(' ').filter(Boolean));
  const post = (d: IndexedDoc) => {
    if (!d.json) return false;
    let text = d.json;
    if (code === '_text') text = (JSON.parse(d.json) as { text?: { div?: string } }).text?.div?.replace(/<[^>]+>/g, ' ') ?? '';
    const hay = fold(text);
    return alternatives.some((words) => words.every((w) => hay.includes(w)));
  };
  return { post, needsJson: true };
}
