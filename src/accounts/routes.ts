import Router from '@koa/router';
import type { Context, Next } from 'koa';
import { HttpMethodEnum, koaBody } from 'koa-body';
import { errors, informational } from '../fhir/outcomes.js';
import type { Account } from './account-store.js';
import { invalidCredentials, type AccountService, type CreateAccountInput } from './account-service.js';

export interface AccountRoutesOptions {
  /**
   * The signed-in account of a request, if any (the SMART server wires it to access tokens). Without one,
   * password change falls back to e-mail + current password in the body.
   */
  authenticateRequest?: (ctx: Context) => Promise<Account | undefined>;
}

/** These bodies are a handful of short strings; anything larger is refused before parsing (413). */
const BODY_LIMIT = '16kb';

type Body = Record<string, unknown>;

/** Only JSON objects: a form post or an array gets a clear 415/400 instead of "email is required". */
async function jsonObject(ctx: Context, next: Next) {
  if (!ctx.is('application/json', 'application/*+json')) throw errors.unsupportedMediaType('Send a JSON body (Content-Type: application/json)');
  await next();
}

function body(ctx: Context): Body {
  const b = ctx.request.body as unknown;
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw errors.badRequest('The request body must be a JSON object');
  return b as Body;
}

function answer(ctx: Context, status: number, payload: unknown) {
  ctx.status = status;
  ctx.type = 'application/fhir+json; charset=utf-8';
  ctx.body = JSON.stringify(payload);
}

/**
 * Account endpoints under /auth. Errors are thrown as OperationOutcomeErrors and rendered by the app's error
 * middleware (400 with one issue per field, 401, 409, 429 with Retry-After). Responses are never cached:
 * they concern credentials.
 */
export function accountRoutes(service: AccountService, opts: AccountRoutesOptions = {}): Router {
  const router = new Router({ prefix: '/auth' });
  const parse = koaBody({
    jsonLimit: BODY_LIMIT,
    jsonStrict: true,
    urlencoded: false,
    text: false,
    multipart: false,
    parsedMethods: [HttpMethodEnum.POST],
  });
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  router.post('/register', jsonObject, parse, async (ctx) => {
    const account = await service.registerPatient(body(ctx));
    ctx.set('Location', `/fhir/${account.fhirUser}`);
    answer(ctx, 201, { id: account._id, fhirUser: account.fhirUser });
  });

  router.post('/password/change', jsonObject, parse, async (ctx) => {
    const b = body(ctx);
    let account = opts.authenticateRequest ? await opts.authenticateRequest(ctx) : undefined;
    if (!account) {
      if (b.email === undefined) throw invalidCredentials();
      account = await service.authenticate(b.email, b.currentPassword, ctx.ip);
    }
    await service.changePassword(account._id, b.currentPassword, b.newPassword, ctx.ip);
    answer(ctx, 200, informational('The password was changed'));
  });

  router.post('/password/reset-request', jsonObject, parse, async (ctx) => {
    await service.requestPasswordReset(body(ctx).email);
    answer(ctx, 202, informational('If an account exists for this address, an e-mail with a reset code is on its way'));
  });

  // Administrators create practitioner and administrator accounts (the guide: practitioners do not sign
  // themselves up). A hospital administrator may only create accounts for their own organization.
  router.post('/admin/accounts', jsonObject, parse, async (ctx) => {
    const admin = opts.authenticateRequest ? await opts.authenticateRequest(ctx) : undefined;
    if (!admin) throw errors.unauthorized('Sign in as an administrator (Authorization: Bearer …)');
    if (admin.kind !== 'system-admin' && admin.kind !== 'hospital-admin') throw errors.forbidden('Only administrators create accounts');
    const b = body(ctx);
    const kind = b.kind as CreateAccountInput['kind'];
    if (admin.kind === 'hospital-admin' && (kind === 'system-admin' || kind === 'patient' || (kind === 'hospital-admin' && b.organization !== admin.organization))) {
      throw errors.forbidden('A hospital administrator creates practitioner accounts, and administrators of their own organization');
    }
    const account = await service.createAccount({
      kind,
      email: b.email as string,
      password: b.password as string,
      ...(b.givenName !== undefined || b.familyName !== undefined ? { person: { givenName: b.givenName as string, familyName: b.familyName as string, phone: b.phone as string | undefined } } : {}),
      ...(typeof b.fhirUser === 'string' ? { fhirUser: b.fhirUser } : {}),
      ...(typeof b.organization === 'string' ? { organization: b.organization } : {}),
    });
    answer(ctx, 201, { id: account._id, kind: account.kind, fhirUser: account.fhirUser, organization: account.organization });
  });

  router.post('/password/reset', jsonObject, parse, async (ctx) => {
    const b = body(ctx);
    await service.resetPassword(b.token, b.newPassword);
    answer(ctx, 200, informational('The password was changed; sign in with the new password'));
  });

  return router;
}
