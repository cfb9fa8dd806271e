import Router from '@koa/router';
import type { Context } from 'koa';
import { isOperationOutcomeError, issue, outcome } from '../fhir/outcomes.js';
import type { Billing } from './billing.js';

const MAX_BYTES = 1024 * 1024;

async function rawBody(ctx: Context): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * `POST /webhooks/stripe`: Stripe's events, verified on the raw body (no body parser runs before it) with the
 * endpoint's signing secret. Answers 200 when handled or already handled, 400 on a bad signature (nothing
 * stored), 404 for an intent we do not know (Stripe retries, e.g. when the event overtook our own write).
 */
export function stripeWebhookRoutes(billing: () => Billing): Router {
  const router = new Router();
  router.post('/webhooks/stripe', async (ctx) => {
    const send = (status: number, body: unknown) => {
      ctx.status = status;
      ctx.type = status === 200 ? 'application/json' : 'application/fhir+json';
      ctx.body = JSON.stringify(body);
    };
    const raw = await rawBody(ctx);
    if (!raw) return send(413, outcome([issue('error', 'too-costly', 'A Stripe event is at most 1 MB')]));
    try {
      const answer = await billing().payments.webhook(raw, ctx.get('stripe-signature') || undefined);
      send(answer.status, answer.body);
    } catch (err) {
      if (isOperationOutcomeError(err)) {
        for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
        return send(err.status, err.outcome);
      }
      throw err;
    }
  });
  return router;
}
