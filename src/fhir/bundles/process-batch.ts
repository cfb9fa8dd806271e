import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import { isOperationOutcomeError } from '../outcomes.js';
import type { FhirRequest, HandlerContext } from '../rest/types.js';
import { entryRequest, processingOrder, type PlannedEntry } from './bundle-entries.js';
import { entryFromError, entryFromResponse } from './entry-response.js';

/**
 * A batch (R4 3.1.0.11.1): entries are independent; each succeeds or fails on its own and the response
 * lists them in request order. Unexpected failures are reported per entry too, never as a whole-batch 500.
 */
export async function processBatch(entries: PlannedEntry[], req: FhirRequest, ctx: HandlerContext, onUnexpected: (err: unknown) => void): Promise<Bundle> {
  const results: BundleEntry[] = new Array(entries.length);
  for (const e of processingOrder(entries)) {
    try {
      results[e.index] = entryFromResponse(await ctx.dispatch(entryRequest(e, req), ctx));
    } catch (err) {
      if (isOperationOutcomeError(err)) results[e.index] = entryFromError(err);
      else {
        onUnexpected(err);
        results[e.index] = { response: { status: '500 Internal Server Error', outcome: { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', details: { text: 'Internal error processing this entry' } }] } } };
      }
    }
  }
  return { resourceType: 'Bundle', type: 'batch-response', entry: results };
}
