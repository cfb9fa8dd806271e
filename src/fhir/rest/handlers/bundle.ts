import { errors } from '../../outcomes.js';
import { planEntries } from '../../bundles/bundle-entries.js';
import { processBatch } from '../../bundles/process-batch.js';
import { processTransaction } from '../../bundles/process-transaction.js';
import type { Handler } from '../types.js';

/** POST [base] with a batch or transaction Bundle (R4 3.1.0.11). */
export const bundle: Handler = async (req, ctx) => {
  if (req.body === undefined) throw errors.badRequest('POST to the base needs a Bundle of type batch or transaction');
  const { type, entries } = planEntries(req.body, req.baseUrl, ctx.maxBundleEntries);
  const result = type === 'batch' ? await processBatch(entries, req, ctx, ctx.onUnexpectedError) : await processTransaction(entries, req, ctx);
  return { status: 200, body: result };
};
