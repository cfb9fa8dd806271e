import { randomUUID } from 'node:crypto';
import type { ClientSession, MongoClient } from 'mongodb';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { errors } from '../../outcomes.js';
import { WITHOUT_INDEX, type Indexer, type SearchIndex } from '../../search/index-entry.js';
import type { SearchEngine, SearchRequest, SearchRestriction, SearchResult } from '../../search/engine.js';
import type { FhirRepository } from '../repository.js';
import { FHIR_ID, type HistoryPage, type HistoryQuery, type ResourceVersion, type WriteOptions, type WriteResult } from '../types.js';
import { type Collections, type CurrentDoc, type VersionFields, toVersion } from './documents.js';
import { VersionConflict, rollForward, writeVersion } from './version-writer.js';
import { maybeInTransaction } from './transactions.js';
import { withCriteriaLock } from './criteria-lock.js';
import { UnitOfWork } from './unit-of-work.js';
import type { CursorCodec } from './cursor.js';
import type { SideWriteHooks } from '../side-writes.js';
import type { ResourceCache } from '../resource-cache.js';
import type { NativeQueries } from '../../search/native-queries.js';
import { insertSideWrites, removeSideWrites, type SideWriteVersion } from './side-write-store.js';
import type { PendingRollbacks } from './pending-rollbacks.js';

export interface MongoRepositoryDeps {
  client: MongoClient;
  collections: Collections;
  supportsTransactions: boolean;
  /** Returns every validation issue of a resource (errors reject the write). */
  validate: (resource: Resource) => OperationOutcomeIssue[];
  indexer: Indexer;
  /** FHIR search over the stored index (conditional writes use it too). */
  search: SearchEngine;
  /** Called after a SearchParameter resource is written or deleted (custom parameters take effect at once). */
  onSearchParameterChange?: (version: ResourceVersion) => Promise<void>;
  isResourceType: (type: string) => boolean;
  /** Signs and checks paging cursors. */
  cursors: CursorCodec;
  /** Documents other modules write with each version (audit records, subscription outbox; see side-writes.ts). */
  sideWrites?: SideWriteHooks;
  /** Current versions for read and vread, invalidated after every committed write (see resource-cache.ts). */
  cache?: ResourceCache;
  /** Documents by `_id` straight from the engine's own storage (FerretDB's PostgreSQL), for read and vread. */
  byId?: NativeQueries['byId'];
  /** Where a rollback interrupted by a database outage is retried until done (engines without transactions). */
  pendingRollbacks?: PendingRollbacks;
}

/**
 * Most versions a committed unit of work stores in the resource cache (filled on write); a bigger one, a bulk
 * load, only invalidates, so that loading millions of resources does not fill Redis with entries nobody asked for.
 */
const MAX_FILLED_PER_UNIT = 100;
const filled = (uow: UnitOfWork | undefined, committed: boolean) => (committed && uow && uow.current.size <= MAX_FILLED_PER_UNIT ? uow.current : undefined);

/** How often a write without If-Match retries after losing a race to another writer. */
const MAX_WRITE_ATTEMPTS = 8;

/** FHIR repository on MongoDB (or FerretDB): versioned, validated, race-free per resource. */
export class MongoRepository implements FhirRepository {
  readonly supportsTransactions: boolean;

  constructor(
    private readonly deps: MongoRepositoryDeps,
    /** Set on the repository handed to a transaction's callback. */
    private readonly uow?: UnitOfWork,
  ) {
    this.supportsTransactions = deps.supportsTransactions;
  }

  async transaction<T>(fn: (tx: FhirRepository) => Promise<T>): Promise<T> {
    if (this.uow) return fn(this); // already inside one: join it
    const c = this.deps.collections;
    if (this.supportsTransactions) {
      const session = this.deps.client.startSession();
      let uow: UnitOfWork | undefined;
      let committed = false;
      try {
        let result: T | undefined;
        // withTransaction re-runs the callback on transient conflicts, so each attempt gets a fresh unit.
        await session.withTransaction(async () => {
          await uow?.releaseLocks();
          uow = new UnitOfWork(c, session);
          result = await fn(new MongoRepository(this.deps, uow));
          await uow.flush();
        });
        committed = true;
        return result as T;
      } finally {
        // After the commit (or abort): what the unit wrote is read afresh from now on (its versions from the
        // cache, when it committed).
        await this.deps.cache?.invalidate(uow?.cacheKeys ?? [], filled(uow, committed));
        await uow?.releaseLocks();
        await session.endSession();
      }
    }
    const uow = new UnitOfWork(c, undefined);
    let committed = false;
    try {
      const result = await fn(new MongoRepository(this.deps, uow));
      await uow.flush();
      committed = true;
      return result;
    } catch (err) {
      try {
        await uow.rollback();
      } catch (rollbackErr) {
        // The database went away in the middle: undo the rest once it is back (the client gets the error, a 503).
        const pending = this.deps.pendingRollbacks;
        if (!pending) throw rollbackErr;
        pending.add(async () => {
          await uow.rollback();
          await this.deps.cache?.invalidate(uow.cacheKeys);
          await uow.releaseLocks().catch(() => undefined); // locks expire anyway
        });
      }
      throw err;
    } finally {
      // Also after a rollback: a reader may have cached a version that was undone (read uncommitted).
      await this.deps.cache?.invalidate(uow.cacheKeys, filled(uow, committed));
      // A lock that cannot be released (the database is gone) expires after its lease; the outcome stands.
      await uow.releaseLocks().catch(() => undefined);
    }
  }

  /** Driver options that put an operation into the current transaction, if any. */
  private get s() {
    return { session: this.uow?.session };
  }

  /** Holds the criteria lock for `fn` (until the end of the unit of work, inside a transaction). */
  private async locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    if (!this.uow) return withCriteriaLock(this.deps.collections, name, fn);
    await this.uow.lock(name);
    return fn();
  }

  async create(resource: Resource, opts: { ifNoneExist?: string; id?: string; restrict?: SearchRestriction } = {}): Promise<WriteResult> {
    this.checkType(resource?.resourceType);
    const type = resource.resourceType;
    if (opts.ifNoneExist !== undefined) {
      const criteria = opts.ifNoneExist;
      const lockName = `${type}?${normalizeCriteria(criteria)}`;
      await this.findByCriteria(type, criteria, 0); // reject bad criteria before taking the lock
      return this.locked(lockName, async () => {
        const matches = await this.findByCriteria(type, criteria, 2, opts.restrict);
        if (matches.length > 1) throw errors.preconditionFailed(`If-None-Exist criteria '${criteria}' matched ${matches.length} or more ${type} resources`);
        if (matches.length === 1) return { version: matches[0]!, created: false, matched: true };
        return this.createNew(resource, opts.id);
      });
    }
    return this.createNew(resource, opts.id);
  }

  private async createNew(resource: Resource, id: string = randomUUID()): Promise<WriteResult> {
    // R4 3.1.0.5: the server assigns the id of a created resource; any id in the body is ignored.
    const prepared = this.prepare({ ...resource, id } as Resource);
    const version = await this.commit(prepared, null, 'POST');
    return { version, created: true };
  }

  async read(resourceType: string, id: string): Promise<ResourceVersion> {
    this.checkType(resourceType);
    if (!FHIR_ID.test(id)) throw errors.notFound(`${resourceType}/${id} is not a valid resource id`);
    await this.uow?.flush();
    const key = `${resourceType}/${id}`;
    const version = await this.throughCache(key, () => this.byId(this.deps.collections.currentName(resourceType), key)
      ?? this.deps.collections.current(resourceType).findOne({ _id: key }, { projection: WITHOUT_INDEX, ...this.s }));
    if (!version) throw errors.notFound(`${resourceType}/${id} not found`);
    if (version.deleted) throw errors.gone(`${resourceType}/${id} was deleted`);
    return version;
  }

  async vread(resourceType: string, id: string, versionId: string): Promise<ResourceVersion> {
    this.checkType(resourceType);
    const v = Number(versionId);
    if (!FHIR_ID.test(id) || !Number.isInteger(v) || v < 1) throw errors.notFound(`${resourceType}/${id}/_history/${versionId} not found`);
    await this.uow?.flush();
    const key = `${resourceType}/${id}/${v}`;
    const version = await this.throughCache(key, () => this.byId(this.deps.collections.historyName(resourceType), key)
      ?? this.deps.collections.history(resourceType).findOne({ _id: key }, this.s));
    if (!version) throw errors.notFound(`${resourceType}/${id}/_history/${versionId} not found`);
    if (version.deleted) throw errors.gone(`${resourceType}/${id} version ${versionId} is a deletion`);
    return version;
  }

  /** The engine's own read by `_id` where there is one, outside units of work (undefined: use the driver). */
  private byId(collection: string, key: string): Promise<VersionFields | null> | undefined {
    return this.deps.byId && !this.uow ? this.deps.byId(collection, key) : undefined;
  }

  /**
   * A version by its cache key: from the resource cache outside units of work, else from `load`, filling the
   * cache with the ticket taken before the database read (see resource-cache.ts). Undefined when there is none.
   */
  private async throughCache(key: string, load: () => Promise<VersionFields | null>): Promise<ResourceVersion | undefined> {
    const cached = this.deps.cache && !this.uow ? await this.deps.cache.lookup(key) : undefined;
    if (cached && 'hit' in cached) return cached.hit;
    const doc = await load();
    if (!doc) return undefined;
    const version = toVersion(doc);
    if (cached) await this.deps.cache!.fill(key, cached.ticket, version);
    return version;
  }

  async update(resource: Resource, opts: WriteOptions = {}): Promise<WriteResult> {
    this.checkType(resource?.resourceType);
    if (!resource.id) throw errors.badRequest('An update needs the resource id in the body', [`${resource.resourceType}.id`]);
    if (!FHIR_ID.test(resource.id)) throw errors.badRequest(`'${resource.id}' is not a valid FHIR id`, [`${resource.resourceType}.id`]);
    const prepared = this.prepare(resource);
    return this.withRetries(`${resource.resourceType}/${resource.id}`, opts, async (current) => {
      const version = await this.commit(prepared, current, 'PUT', opts.bulk);
      return { version, created: !current || current.del };
    });
  }

  async conditionalUpdate(resourceType: string, criteria: string, resource: Resource, opts: WriteOptions = {}): Promise<WriteResult> {
    this.checkType(resourceType);
    if (resource?.resourceType !== resourceType) throw errors.badRequest(`Body resourceType '${resource?.resourceType}' does not match URL type '${resourceType}'`);
    const lockName = `${resourceType}?${normalizeCriteria(criteria)}`;
    await this.findByCriteria(resourceType, criteria, 0); // reject bad criteria before taking the lock
    return this.locked(lockName, async () => {
      const matches = await this.findByCriteria(resourceType, criteria, 2, opts.restrict);
      if (matches.length > 1) throw errors.preconditionFailed(`Conditional update criteria '${criteria}' matched more than one ${resourceType}`);
      if (matches.length === 1) {
        const id = matches[0]!.id;
        if (resource.id && resource.id !== id) throw errors.badRequest(`Body id '${resource.id}' does not match the resource found by the criteria (${id})`);
        return this.update({ ...resource, id } as Resource, opts);
      }
      if (resource.id) return this.update(resource, opts);
      return this.createNew(resource);
    });
  }

  async patch(resourceType: string, id: string, operations: Operation[], opts: WriteOptions = {}): Promise<WriteResult> {
    this.checkType(resourceType);
    // An id no resource can have is never sent to the engine (FerretDB fails on e.g. a NUL in a pushed-down key).
    if (!FHIR_ID.test(id)) throw errors.notFound(`${resourceType}/${id} is not a valid resource id`);
    if (!Array.isArray(operations)) throw errors.badRequest('A JSON Patch body must be an array of operations');
    const patchError = jsonpatch.validate(operations);
    if (patchError) throw errors.badRequest(`Invalid JSON Patch: ${patchError.name} at operation ${patchError.index}`);
    return this.withRetries(`${resourceType}/${id}`, opts, async (current) => {
      if (!current) throw errors.notFound(`${resourceType}/${id} not found`);
      if (current.del || current.json === null) throw errors.gone(`${resourceType}/${id} was deleted`);
      let patched: Resource;
      try {
        patched = jsonpatch.applyPatch(JSON.parse(current.json), operations, true, false).newDocument as Resource;
      } catch (err) {
        const name = (err as { name?: string }).name;
        if (name === 'TEST_OPERATION_FAILED') throw errors.businessRule('JSON Patch test operation failed');
        throw errors.badRequest(`JSON Patch could not be applied: ${(err as Error).message.split('\n')[0]}`);
      }
      if (patched?.resourceType !== resourceType || patched.id !== id) throw errors.badRequest('A patch may not change resourceType or id');
      const version = await this.commit(this.prepare(patched), current, 'PATCH');
      return { version, created: false };
    });
  }

  async delete(resourceType: string, id: string, opts: WriteOptions = {}): Promise<ResourceVersion | undefined> {
    this.checkType(resourceType);
    if (!FHIR_ID.test(id)) throw errors.notFound(`${resourceType}/${id} is not a valid resource id`);
    const result = await this.withRetries(`${resourceType}/${id}`, opts, async (current) => {
      if (!current || current.del) return { version: undefined as unknown as ResourceVersion, created: false };
      const version = await this.commit({ resourceType, id } as Resource, current, 'DELETE');
      return { version, created: false };
    });
    return result.version;
  }

  async conditionalDelete(resourceType: string, criteria: string): Promise<ResourceVersion | undefined> {
    this.checkType(resourceType);
    normalizeCriteria(criteria);
    const matches = await this.findByCriteria(resourceType, criteria, 2);
    if (matches.length > 1) throw errors.preconditionFailed(`Conditional delete criteria '${criteria}' matched more than one ${resourceType}`);
    if (matches.length === 0) return undefined;
    return this.delete(resourceType, matches[0]!.id);
  }

  storedTypes(): Promise<string[]> {
    return this.deps.collections.storedTypes();
  }

  async findByCriteria(resourceType: string, criteria: string, limit: number, restrict?: SearchRestriction): Promise<ResourceVersion[]> {
    this.checkType(resourceType);
    await this.uow?.flush();
    const params = [...new URLSearchParams(criteria.startsWith('?') ? criteria.slice(1) : criteria)];
    const docs = await this.deps.search.findDocs(resourceType, params, limit, this.uow?.session, undefined, [], restrict);
    return docs.map(toVersion);
  }

  async search(req: SearchRequest): Promise<SearchResult> {
    for (const t of req.types) this.checkType(t);
    await this.uow?.flush();
    return this.deps.search.search(req, this.uow?.session);
  }

  async history(q: HistoryQuery): Promise<HistoryPage> {
    if (q.resourceType) this.checkType(q.resourceType);
    if (q.id !== undefined && !FHIR_ID.test(q.id)) throw errors.notFound(`${q.resourceType}/${q.id} is not a valid resource id`);
    await this.uow?.flush();
    const filter: Record<string, unknown> = {};
    if (q.id) filter.id = q.id;
    const lu: Record<string, Date> = {};
    if (q.since) lu.$gte = q.since;
    if (q.at) lu.$lt = q.at.end;
    if (Object.keys(lu).length) filter.lu = lu;
    const pageFilter = { ...filter };
    if (q.cursor) {
      const c = this.deps.cursors.decode(q.cursor);
      pageFilter.$or = [{ lu: { $lt: c.lu } }, { lu: c.lu, _id: { $lt: c.key } }];
    }
    // System history merges the newest versions of every stored type (one collection per type).
    const types = q.resourceType ? [q.resourceType] : await this.deps.collections.storedTypes();
    if (q.at) return this.historyAt(types, filter, q);
    const perType = await Promise.all(
      types.map(async (type) => {
        const h = this.deps.collections.history(type);
        const [docs, total] = await Promise.all([
          h.find(pageFilter, this.s).sort({ lu: -1, _id: -1 }).limit(q.count + 1).toArray(),
          h.countDocuments(filter, this.s),
        ]);
        return { docs, total };
      }),
    );
    const docs = perType
      .flatMap((p) => p.docs)
      .sort((a, b) => b.lu.getTime() - a.lu.getTime() || (a._id < b._id ? 1 : a._id > b._id ? -1 : 0))
      .slice(0, q.count + 1);
    const page = docs.slice(0, q.count);
    const last = page[page.length - 1];
    return {
      versions: page.map(toVersion),
      total: perType.reduce((n, p) => n + p.total, 0),
      nextCursor: docs.length > q.count && last ? this.deps.cursors.encode({ lu: last.lu, key: last._id }) : undefined,
    };
  }

  /**
   * R4 `_at`: the versions current at some point in [start, end): those written inside the period, plus
   * for each resource the last version written before it. Computed over every version older than `end`,
   * so it costs more than plain history; paging still uses the keyset cursor.
   */
  private async historyAt(types: string[], filter: Record<string, unknown>, q: HistoryQuery): Promise<HistoryPage> {
    const { start } = q.at!;
    const all = (await Promise.all(types.map((t) => this.deps.collections.history(t).find(filter, this.s).sort({ lu: -1, _id: -1 }).toArray()))).flat();
    const lastBefore = new Map<string, (typeof all)[number]>();
    // A version written exactly at `start` supersedes the earlier one before the period begins.
    const replacedAtStart = new Set(all.filter((d) => d.lu.getTime() === start.getTime()).map((d) => `${d.t}/${d.id}`));
    const chosen = all.filter((d) => {
      if (d.lu >= start) return true;
      if (replacedAtStart.has(`${d.t}/${d.id}`)) return false;
      const key = `${d.t}/${d.id}`;
      const seen = lastBefore.get(key);
      if (!seen || d.v > seen.v) lastBefore.set(key, d);
      return false;
    });
    const versions = [...chosen, ...lastBefore.values()].sort((a, b) => b.lu.getTime() - a.lu.getTime() || (a._id < b._id ? 1 : -1));
    const c = q.cursor ? this.deps.cursors.decode(q.cursor) : undefined;
    const rest = c ? versions.filter((d) => d.lu < c.lu || (d.lu.getTime() === c.lu.getTime() && d._id < c.key)) : versions;
    const page = rest.slice(0, q.count);
    const last = page[page.length - 1];
    return {
      versions: page.map(toVersion),
      total: versions.length,
      nextCursor: rest.length > q.count && last ? this.deps.cursors.encode({ lu: last.lu, key: last._id }) : undefined,
    };
  }

  /** Validates and normalizes a resource for storage; throws 400 with every issue found. */
  private prepare(resource: Resource): Resource {
    const issues = this.deps.validate(resource);
    if (issues.some((i) => i.severity === 'error' || i.severity === 'fatal')) throw errors.invalid(issues);
    return resource;
  }

  /**
   * Runs a read-modify-write against the current document. A lost race is retried from a fresh read,
   * unless the client pinned the version with If-Match: then it is a 412 and nothing is written.
   */
  private async withRetries(key: string, opts: WriteOptions, attempt: (current: CurrentDoc | null) => Promise<WriteResult>): Promise<WriteResult> {
    const expected = opts.ifMatch === undefined ? undefined : parseIfMatch(opts.ifMatch);
    await this.uow?.flush();
    for (let i = 0; ; i++) {
      const current = await this.deps.collections.current(key.split('/')[0]!).findOne({ _id: key }, this.s);
      if (expected !== undefined && (!current || current.v !== expected)) {
        throw errors.preconditionFailed(`If-Match version ${expected} does not match the current version${current ? ` (${current.v})` : ' (none)'} of ${key}`);
      }
      try {
        return await attempt(current);
      } catch (err) {
        if (!(err instanceof VersionConflict)) throw err;
        // Inside an engine transaction the failed write has aborted it: report, do not retry here.
        if (this.uow?.session) throw expected !== undefined ? errors.preconditionFailed(`${key} was changed by another writer`) : errors.conflict(`${key} was changed by another writer during the transaction; retry`);
        if (await rollForward(this.deps.collections, key, current?.v ?? 0, (json) => this.deps.indexer(JSON.parse(json)))) await this.deps.cache?.invalidate([key]);
        if (expected !== undefined) throw errors.preconditionFailed(`${key} was changed by another writer (version ${err.version} exists)`);
        if (i + 1 >= MAX_WRITE_ATTEMPTS) throw err.settling ? errors.unavailable(`An earlier write of ${key} is still being settled; retry shortly`) : errors.conflict(`${key} is being changed by many writers at once; retry later`);
        if (err.settling) await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** i, 1000)));
      }
    }
  }

  /** The version side writes belong to, and how to tell whether it has been written (side-write-store.ts). */
  private sideWriteVersion(doc: CurrentDoc): SideWriteVersion {
    return { key: doc._id, v: doc.v, written: async () => !!(await this.deps.collections.history(doc.t).findOne({ _id: `${doc._id}/${doc.v}` }, { projection: { _id: 1 } })) };
  }

  /** Writes the next version after `current` (a deletion when method is DELETE). */
  private async commit(resource: Resource, current: CurrentDoc | null, method: ResourceVersion['method'], bulk = false): Promise<ResourceVersion> {
    const type = resource.resourceType;
    const id = resource.id!;
    const v = (current?.v ?? 0) + 1;
    // Keep lastUpdated strictly increasing per resource even if the clock steps back.
    const now = Date.now();
    const lu = new Date(current && current.lu.getTime() >= now ? current.lu.getTime() + 1 : now);
    const deleted = method === 'DELETE';
    let json: string | null = null;
    let ix: SearchIndex | undefined;
    if (!deleted) {
      const { resourceType: _t, id: _i, meta, ...rest } = resource as Resource & { meta?: Record<string, unknown> };
      const { versionId: _v, lastUpdated: _l, ...otherMeta } = meta ?? {};
      // An update that changes nothing but meta.versionId/lastUpdated writes no new version (as HAPI does),
      // so re-running a load (e.g. scripts/seed) leaves history untouched.
      if (current && !current.del && current.json && method !== 'POST') {
        const same = { resourceType: type, id, meta: { ...otherMeta, versionId: String(current.v), lastUpdated: current.lu.toISOString() }, ...rest };
        if (JSON.stringify(same) === current.json) return toVersion(current);
      }
      const stored = { resourceType: type, id, meta: { ...otherMeta, versionId: String(v), lastUpdated: lu.toISOString() }, ...rest };
      json = JSON.stringify(stored);
      ix = this.deps.indexer(stored as Record<string, unknown>);
    }
    const doc: CurrentDoc = { _id: `${type}/${id}`, t: type, id, v, lu, del: deleted, json, m: method, ...ix };
    await this.deps.collections.ready(type);
    const version = toVersion(doc);
    const sides = this.deps.sideWrites?.empty === false
      ? await this.deps.sideWrites.collect({ version, previous: current ? toVersion(current) : undefined, inUnitOfWork: !!this.uow })
      : [];
    // Keys whose cached versions this write replaces: the resource, and the version number it (re)uses.
    const cacheKeys = [doc._id, `${doc._id}/${doc.v}`];
    if (this.uow) {
      this.uow.cacheKeys.push(...cacheKeys);
      this.uow.current.set(doc._id, version);
    }
    if (this.uow && !current) {
      // New resources in a unit of work are written in bulk (see UnitOfWork.flush).
      this.uow.buffer(doc, sides);
    } else if (this.uow) {
      await this.uow.writeSides(sides, this.sideWriteVersion(doc));
      await writeVersion(this.deps.collections, doc, this.uow.session);
      this.uow.recordWrite(doc, current);
    } else if (sides.length && !this.supportsTransactions) {
      // Side writes first, removed again if the version cannot be written (see side-writes.ts).
      const db = this.deps.collections.database;
      await insertSideWrites(this.deps.collections, sides, undefined, this.sideWriteVersion(doc));
      try {
        await writeVersion(this.deps.collections, doc);
      } catch (err) {
        await removeSideWrites(db, sides).catch((removeErr) => {
          // The database went away: remove them once it is back (until then they hold this version's keys).
          if (!this.deps.pendingRollbacks) throw removeErr;
          this.deps.pendingRollbacks.add(() => removeSideWrites(db, sides));
        });
        throw err;
      }
    } else {
      await maybeInTransaction(this.deps.client, this.supportsTransactions, async (session?: ClientSession) => {
        await insertSideWrites(this.deps.collections, sides, session, this.sideWriteVersion(doc));
        await writeVersion(this.deps.collections, doc, session);
      });
    }
    if (!this.uow) await this.deps.cache?.invalidate(cacheKeys, bulk ? undefined : new Map([[doc._id, version]])); // a unit of work: when it ends
    if (type === 'SearchParameter') await this.deps.onSearchParameterChange?.(version);
    return version;
  }

  private checkType(type: unknown): asserts type is string {
    if (typeof type !== 'string' || !this.deps.isResourceType(type)) throw errors.notFound(`Unknown resource type '${String(type)}'`);
  }
}

/** Accepts `W/"3"`, `"3"` or `3`. */
export function parseIfMatch(value: string): number {
  const m = /^\s*(?:W\/)?"?(\d+)"?\s*$/.exec(value);
  if (!m) throw errors.badRequest(`If-Match '${value}' is not a version ETag such as W/"3"`);
  return Number(m[1]);
}

function normalizeCriteria(criteria: string): string {
  if (!criteria.replace(/^\?/, '')) throw errors.badRequest('Conditional criteria must contain at least one search parameter');
  const params = new URLSearchParams(criteria.startsWith('?') ? criteria.slice(1) : criteria);
  params.sort();
  return params.toString();
}
