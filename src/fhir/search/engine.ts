import { createHash } from 'node:crypto';
import type { ClientSession, Filter } from 'mongodb';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { errors, issue } from '../outcomes.js';
import type { Collections, CurrentDoc } from '../storage/mongo/documents.js';
import type { NativeFindOptions, NativeQueries } from './native-queries.js';
import type { CursorCodec } from '../storage/mongo/cursor.js';
import { SEP } from './index-entry.js';
import type { ParamDef, SearchParameterRegistry } from './parameters.js';
import { COMBO, PATIENT_COMBINED, SORTABLE, patientLinks } from './indexer.js';
import {
  UnsupportedCriterion, anyOf, lastUpdatedCondition, paramCondition, splitRaw, textCondition, toFilter, unescape, type Condition, type IndexedDoc,
} from './conditions.js';
import { patientCompartment } from './compartment.js';

export interface SearchRequest {
  /** One type for type-level and compartment search; several (or every stored type) for system search. */
  types: string[];
  /** Every query parameter in order, result parameters included. */
  params: [string, string][];
  /** This server's FHIR base URL: absolute references to it are local references. */
  baseUrl?: string;
  /** `Prefer: handling=strict`: unknown or unsupported parameters are a 400 instead of being ignored. */
  strict?: boolean;
  /** Compartment search: `Patient/123/Observation`. */
  compartment?: { type: string; id: string };
  /** Access restriction ANDed with everything asked (see auth/access-policy.ts). */
  restrict?: SearchRestriction;
}

/**
 * What an access policy confines a search to: the Patient compartments of some patients (types outside
 * the compartment definition are not patient data and stay visible), and search criteria every match must
 * also meet (SMART v2 granular scopes).
 */
export interface SearchRestriction {
  patients?: string[];
  params?: [string, string][];
}

export interface SearchResult {
  matches: CurrentDoc[];
  included: CurrentDoc[];
  total?: number;
  /** False when `total` is an estimate. */
  totalExact: boolean;
  /** Signed cursors for the next and previous pages. */
  next?: string;
  previous?: string;
  /** What the answer leaves out or approximates (outcome entry). */
  issues: OperationOutcomeIssue[];
  /** The parameters the search actually applied (for the self link). */
  applied: [string, string][];
  count: number;
  summary?: string;
  elements?: string[];
}

export interface SearchEngineOptions {
  defaultCount: number;
  maxCount: number;
  /** Most resources `_include`/`_revinclude` add to one page. */
  maxIncludes: number;
  /** Most ids a chain or `_has` may resolve to before the search is refused as too broad. */
  maxChainIds: number;
  /** Most matches counted exactly when counting needs a check per document; beyond it the total is estimated. */
  maxExactCount: number;
  /** How long a paging link stays valid. */
  cursorTtlMs: number;
  /**
   * FerretDB: run an OR of equalities as one query per value (each an index lookup through its pushdown)
   * and merge, since it evaluates `$in` by reading the whole table.
   */
  splitOr: boolean;
  /**
   * `_total` when the client does not say: `accurate` where counting is cheap (MongoDB counts from its
   * indexes); `none` on FerretDB, where a count reads every matching document. Either way a first page
   * that holds every match reports its exact total.
   */
  defaultTotal: 'accurate' | 'none';
  /** The engine's own query path where there is one (FerretDB's PostgreSQL); the driver otherwise. */
  native?: NativeQueries;
}

const RESULT_PARAMS = new Set(['_sort', '_count', '_total', '_summary', '_elements', '_include', '_revinclude', '_cursor', '_format', '_pretty', '_type']);
const IGNORED_SILENTLY = new Set(['_format', '_pretty']);

interface SortKey {
  field: string;
  dir: 1 | -1;
}

interface CursorState {
  /** Query hash: a link only continues the query it came from. */
  h: string;
  /** Sort values of the row the page starts after. */
  k: unknown[];
  /** 1: next page (forward), -1: previous page (backward). */
  d: 1 | -1;
  /** Issued at (ms). */
  i: number;
}

interface TypePlan {
  type: string;
  conds: Condition[];
}

/**
 * FHIR search over the stored index fields. It knows nothing about HTTP: the REST layer, conditional
 * writes, Bundles and $everything all search through it (via the repository).
 */
export class SearchEngine {
  /** Running back-fills of custom parameters (set by the composition root). */
  pendingReindex?: (types: string[]) => Promise<{ parameter: string; task: string; processed: number; total: number }[]>;

  constructor(
    private readonly collections: Collections,
    private readonly registry: SearchParameterRegistry,
    private readonly cursors: CursorCodec,
    private readonly opts: SearchEngineOptions,
  ) {}

  async search(req: SearchRequest, session?: ClientSession): Promise<SearchResult> {
    const issues: OperationOutcomeIssue[] = [];
    // R4 writes iteration as a modifier on the name (`_include:iterate=…`, R3: `:recurse`); carry it in the value.
    for (const [k] of req.params) {
      // R4 names: letters, digits, `-`, `_`; `:` before modifiers and in _has, `.` in chains. Anything else
      // (`name[$gt]`, `$where`) is a malformed request, never an unknown parameter to ignore.
      if (!/^[A-Za-z_][A-Za-z0-9_\-.:]*$/.test(k)) throw errors.badRequest(`'${k}' is not a valid search parameter name`);
    }
    req = {
      ...req,
      params: req.params.map(([k, v]) => {
        const m = /^(_include|_revinclude):(iterate|recurse)$/.exec(k);
        return m ? [m[1]!, `${v}:iterate`] : [k, v];
      }),
    };
    const ignore = (text: string) => {
      if (req.strict) throw errors.notSupported(text);
      issues.push(issue('warning', 'not-supported', `${text}; the parameter was ignored`));
    };
    const s = session ? { session } : {};
    const get = (n: string) => req.params.filter(([k]) => k === n).map(([, v]) => v);
    const applied: [string, string][] = [];

    // Result parameters (R4 3.1.1.5).
    let count = this.opts.defaultCount;
    const countParam = get('_count').at(-1);
    if (countParam !== undefined) {
      if (!/^\d+$/.test(countParam)) throw errors.badRequest(`_count must be a non-negative integer, not '${countParam}'`);
      count = Number(countParam);
      if (count > this.opts.maxCount) {
        issues.push(issue('information', 'informational', `_count=${count} exceeds the maximum page size ${this.opts.maxCount}; pages hold ${this.opts.maxCount} resources`));
        count = this.opts.maxCount;
      }
    }
    const summary = get('_summary').at(-1);
    if (summary !== undefined && !['true', 'false', 'text', 'data', 'count'].includes(summary)) throw errors.badRequest(`_summary must be true, false, text, data or count, not '${summary}'`);
    if (summary === 'count') count = 0;
    const totalMode = get('_total').at(-1) ?? (count === 0 ? 'accurate' : this.opts.defaultTotal);
    if (!['none', 'estimate', 'accurate'].includes(totalMode)) throw errors.badRequest(`_total must be none, estimate or accurate, not '${totalMode}'`);
    const elements = get('_elements').at(-1)?.split(',').map((e) => e.trim()).filter(Boolean);
    const sort = this.parseSort(req.types, get('_sort').at(-1), ignore);
    for (const [k, v] of req.params) if (RESULT_PARAMS.has(k) && !IGNORED_SILENTLY.has(k) && k !== '_cursor') applied.push([k, v]);

    // Criteria, per type.
    const criteria = req.params.filter(([k]) => !RESULT_PARAMS.has(k));
    const plans: TypePlan[] = [];
    const unknownByName = new Map<string, number>();
    const typeErrors: string[] = [];
    for (const type of req.types) {
      const conds: Condition[] = await this.restrictConditions(type, req.restrict, req.baseUrl, s);
      if (req.compartment) conds.push(this.compartmentCondition(req.compartment, type));
      let excluded = false;
      for (const [name, value] of hasLast(criteria)) {
        try {
          const c = await this.criterion(type, name, value, req, s, conds);
          if (c) conds.push(c);
          else unknownByName.set(name, (unknownByName.get(name) ?? 0) + 1);
        } catch (err) {
          if (!(err instanceof UnsupportedCriterion)) throw err;
          if (req.types.length > 1) excluded = true;
          typeErrors.push(err.message);
        }
      }
      for (const [name, n] of unknownByName) if (n > 0 && n < req.types.length && req.types.length > 1) excluded ||= this.unknownFor(type, name);
      if (!excluded) plans.push({ type, conds });
    }
    for (const [name, n] of unknownByName) {
      if (n === req.types.length) ignore(`Unknown search parameter '${name}' for ${req.types.length === 1 ? req.types[0] : 'the requested types'}`);
      else issues.push(issue('information', 'informational', `Search parameter '${name}' does not apply to every requested type; types without it were left out`));
    }
    for (const text of [...new Set(typeErrors)]) ignore(text);
    for (const [k, v] of criteria) if (!unknownByName.has(k) || unknownByName.get(k)! < req.types.length) applied.push([k, v]);

    // Paging position.
    const hash = queryHash(req.types, applied, req.compartment);
    let state: CursorState | undefined;
    const cursorParam = get('_cursor').at(-1);
    if (cursorParam !== undefined) {
      const opened = this.cursors.open(cursorParam) as CursorState;
      if (!opened || typeof opened !== 'object' || !Array.isArray(opened.k) || (opened.d !== 1 && opened.d !== -1) || typeof opened.i !== 'number') {
        throw errors.badRequest('The paging link is malformed; start again from the first page');
      }
      if (opened.h !== hash) throw errors.badRequest('The paging link belongs to a different search; start again from the first page');
      if (Date.now() - opened.i > this.opts.cursorTtlMs) throw errors.gone('The paging link has expired; run the search again from the first page');
      state = opened;
    }

    const result: SearchResult = { matches: [], included: [], totalExact: true, issues, applied, count, summary, elements };
    if (count > 0) {
      const dir = state?.d ?? 1;
      const pageSort = dir === 1 ? sort : sort.map((k) => ({ field: k.field, dir: (k.dir * -1) as 1 | -1 }));
      const rows = await this.page(plans, pageSort, state?.k, count + 1, s);
      const more = rows.length > count;
      const page = rows.slice(0, count);
      if (dir === -1) page.reverse();
      result.matches = page;
      const first = page[0];
      const last = page[page.length - 1];
      const seal = (row: CurrentDoc, d: 1 | -1) => this.cursors.seal({ h: hash, k: sort.map((k) => encodeValue(sortValue(row, k.field))), d, i: Date.now() } satisfies CursorState);
      if (dir === 1) {
        if (more && last) result.next = seal(last, 1);
        if (state && first) result.previous = seal(first, -1);
      } else {
        if (last) result.next = seal(last, 1);
        if (more && first) result.previous = seal(first, -1);
      }
    }
    if (!state && count > 0 && !result.next) {
      // The first page holds every match: that is the total, without counting again.
      result.total = result.matches.length;
    } else if (totalMode !== 'none') {
      const { total, exact } = await this.count(plans, totalMode === 'estimate', s);
      result.total = total;
      result.totalExact = exact;
      if (!exact) issues.push(issue('information', 'informational', `Bundle.total (${total}) is an estimate${totalMode === 'estimate' ? ', as _total=estimate asked' : `: counting exactly would check more than ${this.opts.maxExactCount} resources one by one`}`));
    }
    const customUsed = criteria.some(([k]) => req.types.some((t) => this.registry.get(t, splitModifier(k.split('.')[0]!)[0])?.custom));
    if (customUsed && this.pendingReindex) {
      for (const job of await this.pendingReindex(req.types)) {
        issues.push(issue('information', 'incomplete', `${job.parameter} is still being back-filled (${job.task}: ${job.processed} of ${job.total} resources); older resources may be missing from this answer`));
      }
    }
    if (result.matches.length) await this.includes(req, get('_include'), get('_revinclude'), result, ignore, s);
    return result;
  }

  /** Ids of the current resources of `type` matching criteria (conditional writes, chains, `_has`). */
  async findDocs(
    type: string, params: [string, string][], limit: number, session?: ClientSession, baseUrl?: string, extra: Condition[] = [], restrict?: SearchRestriction,
  ): Promise<CurrentDoc[]> {
    const s = session ? { session } : {};
    const conds: Condition[] = [...extra, ...(await this.restrictConditions(type, restrict, baseUrl, s))];
    for (const [name, value] of hasLast(params)) {
      if (RESULT_PARAMS.has(name)) {
        if (IGNORED_SILENTLY.has(name)) continue;
        throw errors.badRequest(`'${name}' cannot be used in conditional criteria`);
      }
      let c: Condition | undefined;
      try {
        c = await this.criterion(type, name, value, { types: [type], params, baseUrl, strict: true }, s, conds);
      } catch (err) {
        if (err instanceof UnsupportedCriterion) throw errors.notSupported(err.message);
        throw err;
      }
      if (!c) throw errors.notSupported(`Unknown search parameter '${name}' for ${type}`);
      conds.push(c);
    }
    if (limit <= 0) return []; // criteria checked only
    return this.page([{ type, conds }], [{ field: '_id', dir: 1 }], undefined, limit, s);
  }

  // ---------------------------------------------------------------- criteria

  private async criterion(type: string, name: string, value: string, req: SearchRequest, s: { session?: ClientSession }, before: Condition[] = []): Promise<Condition | undefined> {
    if (name === '_id') return { eq: { field: 'id', values: splitRaw(value).map(unescape) } };
    if (name === '_lastUpdated') return lastUpdatedCondition(value);
    if (name === '_text' || name === '_content') return textCondition(name, value);
    if (name.startsWith('_has:')) return this.hasCondition(type, name, value, req, s, before);
    const dot = name.indexOf('.');
    if (dot > 0) return this.chainCondition(type, name.slice(0, dot), name.slice(dot + 1), value, req, s);
    const [code, modifier] = splitModifier(name);
    const def = this.registry.get(type, code);
    if (!def) return undefined;
    return paramCondition(def, modifier, value, { baseUrl: req.baseUrl });
  }

  private unknownFor(type: string, name: string): boolean {
    return !this.registry.get(type, splitModifier(name.split('.')[0]!)[0]);
  }

  /** Chaining (R4 3.1.1.4.13): `subject:Patient.name=x` becomes `subject` in the ids of the Patients named x. */
  private async chainCondition(type: string, head: string, rest: string, value: string, req: SearchRequest, s: { session?: ClientSession }): Promise<Condition> {
    const [code, typeModifier] = splitModifier(head);
    const def = this.registry.get(type, code);
    if (!def || def.type !== 'reference') throw new UnsupportedCriterion(`'${head}' is not a reference parameter of ${type}, so it cannot be chained`);
    const targets = typeModifier ? [typeModifier] : def.targets.filter((t) => this.registry.get(t, splitModifier(rest.split('.')[0]!)[0]) || rest.startsWith('_'));
    if (!targets.length) throw new UnsupportedCriterion(`No target type of ${type}.${code} has a search parameter '${rest}'`);
    if (targets.length > 1 && !typeModifier && targets.length > 6) {
      throw errors.badRequest(`Chain '${head}.${rest}' is ambiguous: ${code} may refer to ${targets.length} types; name one, e.g. ${code}:${targets[0]}.${rest}`);
    }
    const keys: string[] = [];
    for (const target of targets) {
      const docs = await this.findDocs(target, [[rest, value]], this.opts.maxChainIds + 1, s.session, req.baseUrl).catch((err) => {
        if (targets.length > 1 && /Unknown search parameter/.test(String(err?.message ?? err?.outcome?.issue?.[0]?.diagnostics))) return [];
        throw err;
      });
      if (docs.length > this.opts.maxChainIds) throw errors.tooLarge(`The chained criterion '${head}.${rest}=${value}' matches more than ${this.opts.maxChainIds} ${target} resources; narrow it`);
      keys.push(...docs.map((d) => `${code}${SEP}${target}/${d.id}`));
    }
    return { eq: { field: 'tk', values: keys } };
  }

  /** Reverse chaining (R4 3.1.1.4.14): `_has:Observation:patient:code=x` keeps resources some matching Observation refers to. */
  private async hasCondition(type: string, name: string, value: string, req: SearchRequest, s: { session?: ClientSession }, before: Condition[]): Promise<Condition> {
    const m = /^_has:([A-Z][A-Za-z]+):([^:]+):(.+)$/.exec(name);
    if (!m) throw errors.badRequest(`'${name}' is not a valid _has parameter (_has:Type:reference:parameter)`);
    const [, source, refCode, rest] = m as unknown as [string, string, string, string];
    const ref = this.registry.get(source, refCode);
    if (!ref || ref.type !== 'reference') throw errors.badRequest(`'${refCode}' is not a reference parameter of ${source}`);
    const prefix = `${refCode}${SEP}${type}/`;
    // Semi-join from the other side when the search's other criteria are narrower: `name=smith&_has:…`
    // checks only the Smiths' Observations instead of collecting every matching Observation first.
    let extra: Condition[] = [];
    if (before.length) {
      const candidates = await this.page([{ type, conds: before }], [{ field: '_id', dir: 1 }], undefined, this.opts.maxChainIds + 1, s);
      if (candidates.length <= this.opts.maxChainIds) {
        if (!candidates.length) return { eq: { field: 'id', values: [] } };
        extra = [{ eq: { field: 'tk', values: candidates.map((c) => `${prefix}${c.id}`) } }];
      }
    }
    const docs = await this.findDocs(source, [[rest, value]], this.opts.maxChainIds + 1, s.session, req.baseUrl, extra);
    if (docs.length > this.opts.maxChainIds) throw errors.tooLarge(`'${name}=${value}' matches more than ${this.opts.maxChainIds} ${source} resources; narrow it`);
    const ids = new Set(docs.flatMap((d) => (d.tk ?? []).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length))));
    return { eq: { field: 'id', values: [...ids] } };
  }

  private async restrictConditions(type: string, restrict: SearchRestriction | undefined, baseUrl: string | undefined, s: { session?: ClientSession }): Promise<Condition[]> {
    if (!restrict) return [];
    const conds: Condition[] = [];
    if (restrict.patients) {
      const params = patientCompartment().get(type);
      if (type === 'Patient') conds.push({ eq: { field: 'id', values: restrict.patients } });
      else if (params) conds.push({ eq: { field: 'tk', values: restrict.patients.flatMap((id) => params.map((p) => `${p}${SEP}Patient/${id}`)) } });
    }
    for (const [name, value] of restrict.params ?? []) {
      const c = await this.criterion(type, name, value, { types: [type], params: [], baseUrl, strict: true }, s);
      if (c) conds.push(c);
    }
    return conds;
  }

  private compartmentCondition(c: { type: string; id: string }, type: string): Condition {
    if (c.type !== 'Patient') throw errors.notSupported(`Only the Patient compartment is supported, not ${c.type}`);
    const params = patientCompartment().get(type);
    if (!params) throw errors.badRequest(`${type} is not in the Patient compartment`);
    if (type === 'Patient') return { eq: { field: 'id', values: [c.id] } };
    return { eq: { field: 'tk', values: params.map((p) => `${p}${SEP}Patient/${c.id}`) } };
  }

  private parseSort(types: string[], param: string | undefined, ignore: (t: string) => void): SortKey[] {
    const keys: SortKey[] = [];
    for (const raw of param?.split(',').map((x) => x.trim()).filter(Boolean) ?? []) {
      const desc = raw.startsWith('-');
      const code = desc ? raw.slice(1) : raw;
      const dir = desc ? -1 : 1;
      if (code === '_id') keys.push({ field: 'id', dir });
      else if (code === '_lastUpdated') keys.push({ field: 'lu', dir });
      else if (types.some((t) => sortable(this.registry.get(t, code)))) {
        // Descending uses the largest value where it differs from the smallest (a date's end), see indexer.ts.
        const dates = types.every((t) => this.registry.get(t, code)?.type === 'date');
        keys.push({ field: `${desc && dates ? 'sd' : 'so'}.${code}`, dir });
      } else if (types.some((t) => this.registry.get(t, code))) ignore(`Sorting by '${code}' is not supported`);
      else ignore(`Unknown sort parameter '${code}'`);
    }
    keys.push({ field: '_id', dir: 1 });
    return keys;
  }

  // ---------------------------------------------------------------- execution

  /**
   * Up to `limit` matches in sort order after `after`. Each type, and on FerretDB each value of the
   * driving equality, is one query; their sorted results are merged.
   */
  private async page(plans: TypePlan[], sort: SortKey[], after: unknown[] | undefined, limit: number, s: { session?: ClientSession }): Promise<CurrentDoc[]> {
    const streams = plans.flatMap((p) => this.queries(p).map((q) => ({ type: p.type, ...q })));
    // Split id lookups in id order (an access restriction to many patients, `_id=` lists): only as many as
    // the page needs, in id order, instead of one lookup per id (FerretDB cannot answer an `$in` from its index).
    if (plans.length === 1 && sort.length === 1 && sort[0]!.field === '_id' && streams.length > limit && streams.every((q) => q.byId !== undefined)) {
      return this.pageByIds(plans[0]!.type, streams, sort[0]!.dir, after?.[0], limit, s);
    }
    const lists = await Promise.all(streams.map((q) => this.fetch(q.type, q.filter, q.post, sort, after, limit, s)));
    const seen = new Set<string>();
    return lists
      .flat()
      .sort((a, b) => compareRows(a, b, sort))
      .filter((d) => (seen.has(d._id) ? false : (seen.add(d._id), true)))
      .slice(0, limit);
  }

  private async pageByIds(
    type: string, streams: { filter: Filter<CurrentDoc>; post?: (d: IndexedDoc) => boolean; byId?: string }[], dir: 1 | -1, after: unknown, limit: number, s: { session?: ClientSession },
  ): Promise<CurrentDoc[]> {
    const key = (q: { byId?: string }) => `${type}/${q.byId}`;
    const unique = [...new Map(streams.map((q) => [key(q), q])).values()];
    const ordered = unique
      .filter((q) => typeof after !== 'string' || (dir === 1 ? key(q) > after : key(q) < after))
      .sort((a, b) => (key(a) < key(b) ? -dir : key(a) > key(b) ? dir : 0));
    const out: CurrentDoc[] = [];
    const col = this.collections.current(type);
    for (let i = 0; i < ordered.length && out.length < limit; i += limit) {
      const chunk = ordered.slice(i, i + limit);
      const found = await Promise.all(chunk.map((q) => col.findOne(q.filter, s)));
      found.forEach((d, j) => {
        if (d && (!chunk[j]!.post || chunk[j]!.post!(d))) out.push(d);
      });
    }
    return out.slice(0, limit);
  }

  /** The engine queries of one type's conditions: `{driver: value, del: false, $and: rest}`; `byId` when split by id. */
  private queries(plan: TypePlan): { filter: Filter<CurrentDoc>; post?: (d: IndexedDoc) => boolean; byId?: string }[] {
    const conds = combinePatientTokens(plan.type, [...plan.conds]);
    const posts = conds.map((c) => c.post).filter((p): p is (d: IndexedDoc) => boolean => !!p);
    const post = posts.length ? (d: IndexedDoc) => posts.every((p) => p(d)) : undefined;
    // The driver: the equality most likely to be selective (an id, a reference, an identifier…).
    const rank = (c: Condition) => (!c.eq ? 99 : c.eq.field === 'id' ? 0 : c.eq.values.some((v) => v.includes('/')) ? 1 : c.eq.field === 'tk' ? 2 : 3) * 1000 + (c.eq?.values.length ?? 0);
    conds.sort((a, b) => rank(a) - rank(b));
    const chosen = conds[0]?.eq ? conds.shift()!.eq! : undefined;
    // A current document's `_id` is `Type/id`: an id equality is a lookup in the primary index (none is on `id`).
    const driver = chosen?.field === 'id' ? { ...chosen, field: '_id', values: chosen.values.map((v) => `${plan.type}/${v}`) } : chosen;
    const rest = conds.map(toFilter).filter((f) => Object.keys(f).length);
    const build = (eq?: Record<string, unknown>): Filter<CurrentDoc> => ({ ...(eq ?? {}), del: false, ...(rest.length ? { $and: rest } : {}) }) as Filter<CurrentDoc>;
    if (!driver) return [{ filter: build(), post }];
    if (!driver.values.length) return [];
    if (driver.values.length === 1 || !this.opts.splitOr) {
      return [{ filter: build(driver.values.length === 1 ? { [driver.field]: driver.values[0] } : { [driver.field]: { $in: driver.values } }), post }];
    }
    return driver.values.map((v, i) => ({ filter: build({ [driver.field]: v }), post, ...(chosen!.field === 'id' ? { byId: chosen!.values[i]! } : {}) }));
  }

  private async fetch(
    type: string, filter: Filter<CurrentDoc>, post: ((d: IndexedDoc) => boolean) | undefined, sort: SortKey[], after: unknown[] | undefined, limit: number, s: { session?: ClientSession },
  ): Promise<CurrentDoc[]> {
    const mongoSort = Object.fromEntries(sort.map((k) => [k.field, k.dir])) as Record<string, 1 | -1>;
    const out: CurrentDoc[] = [];
    let position = after?.map(decodeValue);
    const batch = post ? Math.max(limit * 2, 50) : limit;
    for (;;) {
      const f = position ? ({ $and: [filter, keysetAfter(sort, position)] } as Filter<CurrentDoc>) : filter;
      const docs = await this.find(type, f, { sort: mongoSort, limit: batch, fields: 'page' }, s);
      for (const d of docs) if (!post || post(d)) out.push(d);
      if (out.length >= limit || docs.length < batch) return out.slice(0, limit);
      position = sort.map((k) => sortValue(docs[docs.length - 1]!, k.field));
    }
  }

  private async count(plans: TypePlan[], estimate: boolean, s: { session?: ClientSession }): Promise<{ total: number; exact: boolean }> {
    let total = 0;
    let exact = true;
    for (const plan of plans) {
      const qs = this.queries(plan);
      const col = this.collections.current(plan.type);
      if (!qs.length) continue; // a criterion that can match nothing (an empty chain or _has)
      const needsCheck = qs.some((q) => q.post) || qs.length > 1;
      if (!needsCheck) {
        const counted = this.opts.native && !s.session ? await this.opts.native.count(this.collections.currentName(plan.type), qs[0]!.filter) : undefined;
        // FerretDB: a find pushes the driving equality down; count commands it evaluates by reading the table.
        total += counted ?? (this.opts.splitOr
          ? (await this.find(plan.type, qs[0]!.filter, { fields: 'ids' }, s)).length
          : await col.countDocuments(qs[0]!.filter, s));
        continue;
      }
      if (estimate) {
        for (const q of qs) total += (await this.find(plan.type, q.filter, { limit: this.opts.maxExactCount, fields: 'ids' }, s)).length;
        exact = false;
        continue;
      }
      const ids = new Set<string>();
      for (const q of qs) {
        const docs = await this.find(plan.type, q.filter, { limit: this.opts.maxExactCount + 1, fields: 'page' }, s);
        for (const d of docs) {
          if (!q.post || q.post(d as IndexedDoc)) ids.add(d._id);
        }
        if (ids.size > this.opts.maxExactCount) exact = false;
      }
      total += ids.size;
    }
    return { total, exact };
  }

  /** `_include` / `_revinclude` (R4 3.1.1.5.4), with `:iterate` and `*`, up to maxIncludes resources. */
  private async includes(req: SearchRequest, include: string[], revinclude: string[], result: SearchResult, ignore: (t: string) => void, s: { session?: ClientSession }) {
    const have = new Set(result.matches.map((d) => d._id));
    const added: CurrentDoc[] = [];
    let truncated = false;
    const take = (docs: CurrentDoc[]) => {
      for (const d of docs) {
        if (have.has(d._id)) continue;
        if (added.length >= this.opts.maxIncludes) {
          truncated = true;
          return;
        }
        have.add(d._id);
        added.push(d);
      }
    };
    const parse = (raw: string) => {
      const [spec, iterate] = raw.endsWith(':iterate') ? [raw.slice(0, -8), true] : raw.endsWith(':recurse') ? [raw.slice(0, -8), true] : [raw, false];
      const [source, code, target] = spec.split(':');
      // `_include=*`: every reference of every match.
      return source === '*' && !code ? { source: '*', code: '*', target, iterate } : { source: source!, code: code!, target, iterate };
    };
    const inc = include.map(parse);
    const rev = revinclude.map(parse);
    for (const spec of [...inc, ...rev]) {
      if (spec.source === '*' || spec.code === '*') continue;
      if (!this.registry.get(spec.source, spec.code) || this.registry.get(spec.source, spec.code)!.type !== 'reference') ignore(`_include/_revinclude '${spec.source}:${spec.code}' is not a reference parameter`);
    }
    let frontier = result.matches;
    for (let depth = 0; depth < 4 && frontier.length && !truncated; depth++) {
      const before = added.length;
      for (const spec of inc) {
        if (depth > 0 && !spec.iterate) continue;
        const codes = (type: string) =>
          spec.code === '*' && (spec.source === '*' || spec.source === type) ? [...this.registry.params(type).values()].filter((p) => p.type === 'reference').map((p) => p.code) : type === spec.source || spec.source === '*' ? [spec.code] : [];
        const wanted = new Map<string, Set<string>>();
        for (const d of frontier) {
          for (const code of codes(d.t)) {
            for (const k of d.tk ?? []) {
              if (!k.startsWith(`${code}${SEP}`)) continue;
              const ref = k.slice(code.length + 1);
              const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]+)$/.exec(ref);
              if (!m || (spec.target && m[1] !== spec.target)) continue;
              if (!wanted.has(m[1]!)) wanted.set(m[1]!, new Set());
              wanted.get(m[1]!)!.add(ref);
            }
          }
        }
        for (const [type, keys] of wanted) take(await this.byIds(type, [...keys].filter((k) => !have.has(k)), s));
      }
      for (const spec of rev) {
        if (depth > 0 && !spec.iterate) continue;
        if (spec.source === '*' || !this.registry.get(spec.source, spec.code)) continue;
        const keys = frontier.map((d) => `${spec.code}${SEP}${d.t}/${d.id}`);
        const streams = this.opts.splitOr ? keys.map((k) => ({ tk: k })) : [{ tk: { $in: keys } }];
        for (const f of streams) {
          take(await this.find(spec.source, { ...f, del: false } as Filter<CurrentDoc>, { limit: this.opts.maxIncludes + 1, fields: 'page' }, s));
        }
      }
      frontier = added.slice(before);
    }
    result.included = added;
    if (truncated) {
      result.issues.push(issue('warning', 'too-costly', `Only the first ${this.opts.maxIncludes} included resources are returned; request a smaller _count, or search the included type directly for the rest`));
    }
  }

  /** The engine's query plan for a type-level search (tests show it uses an index). */
  async explain(type: string, params: [string, string][]): Promise<unknown> {
    const conds: Condition[] = [];
    for (const [name, value] of params) {
      const c = await this.criterion(type, name, value, { types: [type], params }, {});
      if (c) conds.push(c);
    }
    const q = this.queries({ type, conds })[0];
    if (!q) return undefined;
    return this.collections.current(type).find(q.filter).sort({ _id: 1 }).limit(this.opts.defaultCount).explain();
  }

  /**
   * `find(filter).sort().limit()` on a type's current documents: through the engine's own query path when
   * it translates the filter (never inside a transaction: its connection is not the session's), else the
   * driver. `ids` reads only `_id`.
   */
  private async find(type: string, filter: Filter<CurrentDoc>, opts: NativeFindOptions, s: { session?: ClientSession }): Promise<CurrentDoc[]> {
    if (this.opts.native && !s.session) {
      const docs = await this.opts.native.find(this.collections.currentName(type), filter as Record<string, unknown>, opts);
      if (docs) return docs;
    }
    let cursor = this.collections.current(type).find(filter, { ...s, ...(opts.fields === 'ids' ? { projection: { _id: 1 } } : {}) });
    if (opts.sort) cursor = cursor.sort(opts.sort);
    if (opts.limit) cursor = cursor.limit(opts.limit);
    return cursor.toArray();
  }

  /** Current resources by `Type/id` key. FerretDB: one pushed-down `_id` lookup each, or one SQL query. */
  async byIds(type: string, keys: string[], s: { session?: ClientSession } = {}): Promise<CurrentDoc[]> {
    if (!keys.length) return [];
    const col = this.collections.current(type);
    if (!this.opts.splitOr || (this.opts.native && !s.session)) return this.find(type, { _id: { $in: keys }, del: false }, { fields: 'page' }, s);
    const docs = await Promise.all(keys.map((k) => col.findOne({ _id: k, del: false }, s)));
    return docs.filter((d): d is CurrentDoc => !!d);
  }
}

function sortable(def: ParamDef | undefined): boolean {
  return !!def?.expression && SORTABLE.has(def.type);
}

/**
 * A patient-reference equality and a code/category/status equality become one equality on the combined
 * keys the indexer stores (see PATIENT_COMBINED), when the product of their values stays small.
 */
function combinePatientTokens(type: string, conds: Condition[]): Condition[] {
  const links = patientLinks(type);
  if (!links) return conds;
  const plain = (c: Condition) => c.eq?.field === 'tk' && !c.filter && !c.post && c.eq.values.length > 0;
  const refIndex = conds.findIndex((c) => plain(c) && c.eq!.values.every((v) => links.some((p) => v.startsWith(`${p}${SEP}Patient/`))));
  if (refIndex < 0) return conds;
  const tokenIndex = conds.findIndex((c, i) => i !== refIndex && plain(c) && c.eq!.values.every((v) => PATIENT_COMBINED.some((p) => v.startsWith(`${p}${SEP}`))));
  if (tokenIndex < 0) return conds;
  const refs = conds[refIndex]!.eq!.values;
  const tokens = conds[tokenIndex]!.eq!.values;
  if (refs.length * tokens.length > 5000) return conds;
  const combined: Condition = { eq: { field: 'tk', values: refs.flatMap((r) => tokens.map((t) => `${r}${COMBO}${t}`)) } };
  return [combined, ...conds.filter((_, i) => i !== refIndex && i !== tokenIndex)];
}

/** `_has` criteria after the others, so they can start from the others' (usually fewer) matches. */
function hasLast(params: [string, string][]): [string, string][] {
  return [...params.filter(([k]) => !k.startsWith('_has:')), ...params.filter(([k]) => k.startsWith('_has:'))];
}

export function splitModifier(name: string): [string, string | undefined] {
  const i = name.indexOf(':');
  return i < 0 ? [name, undefined] : [name.slice(0, i), name.slice(i + 1)];
}

function queryHash(types: string[], applied: [string, string][], compartment?: { type: string; id: string }): string {
  const parts = applied.filter(([k]) => k !== '_count').map(([k, v]) => `${k}=${v}`).sort();
  return createHash('sha256').update(JSON.stringify([types, parts, compartment ?? null])).digest('base64url').slice(0, 16);
}

function sortValue(d: CurrentDoc, field: string): unknown {
  if (field === '_id' || field === 'id') return d[field];
  if (field === 'lu') return d.lu;
  const [obj, code] = field.split('.') as ['so' | 'sd', string];
  return d[obj]?.[code] ?? null;
}

function encodeValue(v: unknown): unknown {
  return v instanceof Date ? { $d: v.getTime() } : v ?? null;
}
function decodeValue(v: unknown): unknown {
  if (v && typeof v === 'object' && typeof (v as { $d?: unknown }).$d === 'number') return new Date((v as { $d: number }).$d);
  if (v === null || typeof v === 'string') return v;
  throw errors.badRequest('The paging link is malformed; start again from the first page');
}

function cmp(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

function compareRows(a: CurrentDoc, b: CurrentDoc, sort: SortKey[]): number {
  for (const k of sort) {
    const c = cmp(sortValue(a, k.field), sortValue(b, k.field)) * k.dir;
    if (c) return c;
  }
  return 0;
}

/**
 * Rows strictly after `values` in `sort` order (keyset paging). Missing values sort first ascending and
 * last descending, as in MongoDB.
 */
function keysetAfter(sort: SortKey[], values: unknown[]): Record<string, unknown> {
  const branches: Record<string, unknown>[] = [];
  for (let i = 0; i < sort.length; i++) {
    const equal = sort.slice(0, i).map((k, j) => ({ [k.field]: values[j] ?? null }));
    const k = sort[i]!;
    const v = values[i] ?? null;
    let after: Record<string, unknown> | undefined;
    if (k.dir === 1) after = v === null ? { [k.field]: { $ne: null } } : { [k.field]: { $gt: v } };
    else after = v === null ? undefined : { $or: [{ [k.field]: { $lt: v } }, { [k.field]: null }] };
    if (after) branches.push(equal.length ? { $and: [...equal, after] } : after);
  }
  return branches.length ? { $or: branches } : { _id: { $exists: false } };
}
