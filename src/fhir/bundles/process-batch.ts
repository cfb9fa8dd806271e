import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import { isOperationOutcomeError } from '../outcomes.js';
import type { FhirRequest, HandlerContext } from '../rest/types.js';
import { entryRequest, processingOrder, type PlannedEntry } from './bundle-entries.js';
import { entryFromError, entryFromResponse } from './entry-response.js';

/** Entries of one method group processed at once. */
const BATCH_CONCURRENCY = 8;
const ORDER_GROUP = (m: PlannedEntry['method']) => (m === 'PATCH' ? 'PUT' : m === 'HEAD' ? 'GET' : m);

/**
 * A batch (R4 3.1.0.11.1): entries are independent; each succeeds or fails on its own and the response
 * lists them in request order. Unexpected failures are reported per entry too, never as a whole-batch 500.
 */
export async function processBatch(entries: PlannedEntry[], req: FhirRequest, ctx: HandlerContext, onUnexpected: (err: unknown) => void): Promise<Bundle> {
  const results: BundleEntry[] = new Array(entries.length);
  const run = async (e: PlannedEntry) => {
    try {
      results[e.index] = entryFromResponse(await ctx.dispatch(entryRequest(e, req), ctx));
    } catch (err) {
      if (isOperationOutcomeError(err)) results[e.index] = entryFromError(err);
      else {
        onUnexpected(err);
        results[e.index] = { response: { status: '500 Internal Server Error', outcome: { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', details: { text: 'Internal error processing this entry' } }] } } };
      }
    }
  };
  // R4 order between method groups (DELETE, POST, PUT/PATCH, GET); within a group batch entries are
  // independent by definition, so a few run at once.
  const ordered = processingOrder(entries);
  for (let start = 0; start < ordered.length; ) {
    const group = ORDER_GROUP(ordered[start]!.method);
    let end = start;
    while (end < ordered.length && ORDER_GROUP(ordered[end]!.method) === group) end++;
    const slice = ordered.slice(start, end);
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(BATCH_CONCURRENCY, slice.length) }, async () => {
      while (next < slice.length) await run(slice[next++]!);
    }));
    start = end;
  }
  return { resourceType: 'Bundle', type: 'batch-response', entry: results };
}
