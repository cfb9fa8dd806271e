import Router from '@koa/router';
import type { Context } from 'koa';
import { HttpMethodEnum, koaBody } from 'koa-body';
import { errors, issue, outcome } from '../fhir/outcomes.js';
import { CHANNELS, type Channel, type ChannelPreferences, type NotificationStore } from './notification-store.js';

export interface PreferenceRoutesOptions {
  /** The signed-in account of the request (from its access token), or undefined. */
  authenticate: (ctx: Context) => Promise<{ accountId?: string; fhirUser?: string } | undefined>;
  /** Channels with no provider configured (said in every answer, never pretended). */
  unavailable: Channel[];
}

function answer(ctx: Context, status: number, payload: unknown) {
  ctx.status = status;
  ctx.type = 'application/json; charset=utf-8';
  ctx.body = JSON.stringify(payload);
}

/**
 * `GET/PUT /auth/preferences`: the signed-in user's notification channels, e.g. `{"email": true,
 * "in-app": true, "sms": false, "push": false}`. PUT takes any subset; unknown keys or non-booleans are a 400.
 */
export function preferenceRoutes(store: NotificationStore, opts: PreferenceRoutesOptions): Router {
  const router = new Router({ prefix: '/auth' });
  const parse = koaBody({ jsonLimit: '4kb', jsonStrict: true, urlencoded: false, text: false, multipart: false, parsedMethods: [HttpMethodEnum.PUT] });
  const who = async (ctx: Context) => {
    const user = await opts.authenticate(ctx);
    if (!user?.accountId) throw errors.unauthorized('Sign in: preferences belong to a user account (send its access token)');
    return user as { accountId: string; fhirUser?: string };
  };
  const view = (channels: ChannelPreferences) => {
    const chosen = opts.unavailable.filter((c) => channels[c]);
    return {
      channels,
      unavailable: opts.unavailable,
      ...(chosen.length ? { outcome: outcome([issue('warning', 'not-supported', `No ${chosen.join(' or ')} provider is configured yet: these notifications are not sent`)]) } : {}),
    };
  };
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  router.get('/preferences', async (ctx) => {
    const user = await who(ctx);
    answer(ctx, 200, view(await store.forAccount(user.accountId)));
  });

  router.put('/preferences', parse, async (ctx) => {
    const user = await who(ctx);
    const body = ctx.request.body as unknown;
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw errors.badRequest('The body must be a JSON object such as {"email": true, "sms": false}');
    const problems = Object.entries(body as Record<string, unknown>)
      .filter(([k, v]) => !(CHANNELS as readonly string[]).includes(k) || typeof v !== 'boolean')
      .map(([k]) => issue('error', 'invalid', `${k}: must be one of ${CHANNELS.join(', ')} with a true/false value`, [k]));
    if (problems.length) throw errors.invalid(problems);
    const channels = { ...(await store.forAccount(user.accountId)), ...(body as Partial<ChannelPreferences>) };
    await store.save(user.accountId, user.fhirUser, channels);
    answer(ctx, 200, view(channels));
  });
  return router;
}
