import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { errors, isOperationOutcomeError, OperationOutcomeError } from '../outcomes.js';
import type { FhirRepository } from '../storage/repository.js';
import { FHIR_ID } from '../storage/types.js';
import type { FhirRequest, HandlerContext } from '../rest/types.js';
import { writeResponse } from '../rest/handlers/write-response.js';
import { entryRequest, processingOrder, type PlannedEntry } from './bundle-entries.js';
import { entryFromResponse } from './entry-response.js';
import { validateResource } from '../validation/validate-resource.js';
import { collectReferences, isConditionalReference, rewriteReferences } from './references.js';

/**
 * A transaction (R4 3.1.0.11.2): all entries succeed or nothing is stored. Runs in one repository unit of
 * work (an engine transaction, or apply-then-undo without one). Everything that can be checked before
 * writing is checked first: shape, duplicate targets, validation, If-Match versions, conditional matches.
 */
export async function processTransaction(entries: PlannedEntry[], req: FhirRequest, ctx: HandlerContext): Promise<Bundle> {
  checkDuplicates(entries);
  return ctx.repo.transaction(async (tx) => {
    const txCtx: HandlerContext = { ...ctx, repo: tx };
    const ids = new Map<string, string>(); // fullUrl → Type/id
    const results: BundleEntry[] = new Array(entries.length);
    const posts = entries.filter((e) => e.method === 'POST');
    for (const e of posts) {
      const type = postType(e);
      const ref = `${type}/${randomUUID()}`;
      if (e.fullUrl) ids.set(e.fullUrl, ref);
    }
    for (const e of entries) {
      if (e.method === 'PUT' && e.fullUrl && e.target.segments.length === 2) ids.set(e.fullUrl, e.target.segments.join('/'));
    }
    const resolve = (ref: string) => ids.get(ref);
    const run = async (e: PlannedEntry, body?: unknown) =>
      step(e, async () => {
        results[e.index] = entryFromResponse(await txCtx.dispatch(entryRequest(e, req, body), txCtx));
      });

    // R4 order: deletions first (they cannot refer to other entries), then conditional creates,
    // dependencies before dependants, so the final id of each is known (an existing match or the id
    // reserved above) before any reference to it is rewritten.
    for (const e of entries.filter((x) => x.method === 'DELETE')) await run(e);
    for (const e of orderByDependencies(posts.filter((p) => p.ifNoneExist), ids)) {
      await step(e, async () => {
        const resource = rewriteReferences(e.resource!, resolve);
        const planned = e.fullUrl ? ids.get(e.fullUrl) : undefined;
        const result = await tx.create(resource, { ifNoneExist: e.ifNoneExist, id: planned?.split('/')[1] });
        if (e.fullUrl) ids.set(e.fullUrl, `${result.version.resourceType}/${result.version.id}`);
        const res = writeResponse(req, result.matched ? 200 : 201, result.version, result.matched ? 'Matched an existing resource' : 'Created');
        // A match created nothing, so it has no Location (R4 3.1.0.8.3).
        if (result.matched) delete res.headers?.Location;
        results[e.index] = entryFromResponse(res);
      });
    }

    await resolveConditionalReferences(entries, tx, ids);
    const pending = entries.filter((e) => e.method !== 'DELETE' && !(e.method === 'POST' && e.ifNoneExist));
    // Rewritten copies, never the planned entries: an engine transaction may run this callback again.
    const rewritten = new Map(pending.filter((e) => e.resource).map((e) => [e, rewriteReferences(e.resource!, resolve)]));
    const patches = new Map(pending.filter((e) => e.method === 'PATCH').map((e) => [e, rewritePatchReferences(e.patch, resolve)]));
    await precheck(pending, rewritten, tx);

    for (const e of processingOrder(pending)) {
      if (e.method !== 'POST') {
        await run(e, rewritten.get(e) ?? patches.get(e));
        continue;
      }
      await step(e, async () => {
        const ref = e.fullUrl ? ids.get(e.fullUrl) : undefined;
        const result = await tx.create(rewritten.get(e)!, { id: ref?.split('/')[1] });
        results[e.index] = entryFromResponse(writeResponse(req, 201, result.version, 'Created'));
      });
    }
    return { resourceType: 'Bundle', type: 'transaction-response', entry: results };
  });
}

/** JSON Patch values may hold references too: whole objects, or a string set at a `/reference` path. */
function rewritePatchReferences(patch: unknown, resolve: (ref: string) => string | undefined): unknown {
  if (!Array.isArray(patch)) return patch;
  return patch.map((op: { path?: unknown; value?: unknown }) => {
    if (op && typeof op.path === 'string' && op.path.endsWith('/reference') && typeof op.value === 'string') return { ...op, value: resolve(op.value) ?? op.value };
    return rewriteReferences(op, resolve);
  });
}

/** Runs one entry's work, prefixing any failure with the entry it came from. */
async function step(e: PlannedEntry, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!isOperationOutcomeError(err)) throw err;
    const outcome = structuredClone(err.outcome);
    for (const issue of outcome.issue ?? []) {
      issue.diagnostics = `Bundle entry ${e.index} (${e.method} ${e.target.segments.join('/')}) failed; the transaction was rolled back`;
    }
    throw new OperationOutcomeError(err.status, outcome, err.headers);
  }
}

function postType(e: PlannedEntry): string {
  const type = e.target.segments[0];
  if (e.target.segments.length !== 1 || !type) throw errors.badRequest(`Bundle entry ${e.index}: POST url must be a resource type`);
  if (e.resource?.resourceType !== type) throw errors.badRequest(`Bundle entry ${e.index}: resource type '${e.resource?.resourceType}' does not match url '${type}'`);
  return type;
}

/** R4: a transaction may not touch the same resource twice, nor declare a fullUrl twice. */
function checkDuplicates(entries: PlannedEntry[]): void {
  const seen = new Set<string>();
  for (const e of entries) {
    const keys: string[] = [];
    if (e.fullUrl && e.method !== 'GET' && e.method !== 'HEAD') keys.push(`fullUrl ${e.fullUrl}`);
    if (['PUT', 'PATCH', 'DELETE'].includes(e.method) && e.target.segments.length === 2) keys.push(`target ${e.target.segments.join('/')}`);
    for (const k of keys) {
      if (seen.has(k)) throw errors.badRequest(`Bundle entry ${e.index}: the transaction names ${k} more than once`);
      seen.add(k);
    }
  }
}

/** Orders conditional creates so that one referring to another (by fullUrl) comes after it. */
function orderByDependencies(conditional: PlannedEntry[], ids: Map<string, string>): PlannedEntry[] {
  const byUrl = new Map(conditional.filter((e) => e.fullUrl).map((e) => [e.fullUrl!, e]));
  const done = new Set<PlannedEntry>();
  const visiting = new Set<PlannedEntry>();
  const out: PlannedEntry[] = [];
  const visit = (e: PlannedEntry) => {
    if (done.has(e)) return;
    if (visiting.has(e)) throw errors.badRequest(`Bundle entry ${e.index}: conditional creates refer to each other in a cycle`);
    visiting.add(e);
    for (const ref of collectReferences(e.resource)) {
      const dep = byUrl.get(ref);
      if (dep && dep !== e && ids.has(ref)) visit(dep);
    }
    visiting.delete(e);
    done.add(e);
    out.push(e);
  };
  conditional.forEach(visit);
  return out;
}

/** Resolves `Type?criteria` references to exactly one existing resource (R4 3.1.0.11.2), else 412/400. */
async function resolveConditionalReferences(entries: PlannedEntry[], repo: FhirRepository, ids: Map<string, string>): Promise<void> {
  for (const e of entries) {
    for (const ref of collectReferences(e.resource)) {
      if (ids.has(ref) || !isConditionalReference(ref)) continue;
      const q = ref.indexOf('?');
      const type = ref.slice(0, q);
      const matches = await repo.findByCriteria(type, ref.slice(q + 1), 2);
      if (matches.length === 0) throw errors.badRequest(`Bundle entry ${e.index}: conditional reference '${ref}' matches no resource`);
      if (matches.length > 1) throw errors.preconditionFailed(`Bundle entry ${e.index}: conditional reference '${ref}' matches more than one resource`);
      ids.set(ref, `${type}/${matches[0]!.id}`);
    }
  }
}

/** Checks before writing anything: URL/body agreement, ids, validation, If-Match versions. */
async function precheck(entries: PlannedEntry[], rewritten: Map<PlannedEntry, Resource>, repo: FhirRepository): Promise<void> {
  for (const e of entries) {
    const [type, id] = e.target.segments;
    const resource = rewritten.get(e);
    if (e.method === 'POST') postType(e);
    if (resource && (e.method === 'POST' || e.method === 'PUT')) {
      const issues = validateResource(resource).filter((i) => i.severity === 'error' || i.severity === 'fatal');
      if (issues.length) {
        for (const i of issues) i.diagnostics = `Bundle entry ${e.index}: the transaction was rolled back`;
        throw errors.invalid(issues);
      }
    }
    if (e.method === 'PUT' && id !== undefined) {
      if (resource?.resourceType !== type) throw errors.badRequest(`Bundle entry ${e.index}: resource type does not match url`);
      if (resource.id !== id) throw errors.badRequest(`Bundle entry ${e.index}: resource id '${resource.id}' does not match url id '${id}'`);
      if (!FHIR_ID.test(id)) throw errors.badRequest(`Bundle entry ${e.index}: '${id}' is not a valid id`);
    }
    if (e.ifMatch && type && id && ['PUT', 'PATCH', 'DELETE'].includes(e.method)) {
      const current = await repo.read(type, id).catch((err: unknown) => {
        if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) return undefined;
        throw err;
      });
      const expected = /(\d+)/.exec(e.ifMatch)?.[1];
      if (!current || current.versionId !== expected) {
        throw errors.preconditionFailed(`Bundle entry ${e.index}: If-Match ${e.ifMatch} does not match the current version of ${type}/${id}${current ? ` (${current.versionId})` : ''}`);
      }
    }
  }
}
