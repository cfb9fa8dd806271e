import Router from '@koa/router';
import { koaBody } from 'koa-body';
import type Provider from 'oidc-provider';
import type { Context } from 'koa';
import { isOperationOutcomeError } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { AccountDirectory, AccountInfo } from './accounts-port.js';
import type { LaunchContexts } from './launch-contexts.js';
import { describeScope, parseScopes } from './smart-scopes.js';
import { escapeHtml } from './provider.js';
import { AccessPolicy } from './access-policy.js';
import type { Indexer } from '../fhir/search/index-entry.js';

interface InteractionDeps {
  provider: () => Provider;
  accounts: AccountDirectory;
  launches: LaunchContexts;
  repo: FhirRepository;
  indexer: Indexer;
  /** Known once the server listens. */
  styleUrl: () => string;
}

const page = (title: string, body: string) =>
  `<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(title)} · Medivoy</title>` +
  `<body style="font-family:system-ui;max-width:32rem;margin:2rem auto"><h1>${escapeHtml(title)}</h1>${body}</body></html>`;

/**
 * The authorization server's pages (plain server-rendered HTML): sign-in, then consent with the requested
 * scopes in words, and a patient picker when a standalone launch asks for a patient the user must choose.
 */
export function interactionRoutes(d: InteractionDeps): Router {
  const router = new Router({ prefix: '/auth/interaction' });
  const form = koaBody({ urlencoded: true, json: false, text: false, multipart: false, formLimit: '16kb' });
  const field = (ctx: Context, name: string) => {
    const v = (ctx.request as { body?: Record<string, unknown> }).body?.[name];
    return typeof v === 'string' ? v : '';
  };

  router.get('/:uid', async (ctx) => {
    const details = await d.provider().interactionDetails(ctx.req, ctx.res);
    const client = await d.provider().Client.find(String(details.params.client_id));
    const clientName = escapeHtml(client?.clientName ?? String(details.params.client_id));
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'html';
    if (details.prompt.name === 'login') {
      ctx.body = loginPage(ctx.params.uid!, clientName);
      return;
    }
    const account = await d.accounts.findById(String(details.session?.accountId));
    const scopes = String(details.params.scope ?? '').split(/\s+/).filter(Boolean);
    const needsPicker = needsPatientChoice(details.params, account);
    ctx.body = page(
      `Allow ${clientName}?`,
      `<p>${clientName} asks to:</p><ul>${scopes.map((s) => `<li>${escapeHtml(describeScope(s))}</li>`).join('')}</ul>` +
        `<form method="post" action="/auth/interaction/${escapeHtml(ctx.params.uid!)}/consent">` +
        (needsPicker ? `<label>Patient id <input name="patient" required></label><br>` : '') +
        `<button name="decision" value="allow">Allow</button> <button name="decision" value="deny">Deny</button></form>`,
    );
  });

  router.post('/:uid/login', form, async (ctx) => {
    await d.provider().interactionDetails(ctx.req, ctx.res); // 400 for an unknown or expired interaction
    let account: AccountInfo;
    try {
      account = await d.accounts.authenticate(field(ctx, 'email'), field(ctx, 'password'), ctx.ip);
    } catch (err) {
      if (!isOperationOutcomeError(err)) throw err;
      ctx.status = err.status;
      for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
      ctx.type = 'html';
      ctx.body = loginPage(ctx.params.uid!, '', err.status === 429 ? 'Too many failed sign-ins; try again later.' : 'Wrong e-mail or password.');
      return;
    }
    const to = await d.provider().interactionResult(ctx.req, ctx.res, { login: { accountId: account.id } }, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(to);
  });

  router.post('/:uid/consent', form, async (ctx) => {
    const provider = d.provider();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (field(ctx, 'decision') !== 'allow') {
      const to = await provider.interactionResult(ctx.req, ctx.res, { error: 'access_denied', error_description: 'The user denied access' }, { mergeWithLastSubmission: false });
      ctx.status = 303;
      return ctx.redirect(to);
    }
    const accountId = String(details.session?.accountId);
    const account = await d.accounts.findById(accountId);
    const params = details.params as Record<string, string | undefined>;
    // The launch context: an EHR launch's, the patient's own record, or the patient the user picked.
    let patient: string | undefined;
    let encounter: string | undefined;
    const ehr = params.launch ? await d.launches.use(params.launch) : undefined;
    if (params.launch && !ehr) return interactionError(ctx, provider, 'invalid_request', 'launch is unknown, expired or already used');
    if (ehr) ({ patient, encounter } = ehr);
    else if (account?.kind === 'patient' && account.fhirUser?.startsWith('Patient/')) patient = account.fhirUser.slice(8);
    if (!ehr && needsPatientChoice(details.params, account)) {
      patient = field(ctx, 'patient').trim();
      if (!patient || !(await mayReachPatient(d, account, patient))) return interactionError(ctx, provider, 'access_denied', 'You cannot open that patient');
    }
    const wantsPatient = /(^|\s)(launch\/patient|patient\/)/.test(params.scope ?? '');
    if (wantsPatient && !patient) return interactionError(ctx, provider, 'invalid_request', 'patient/ scopes need a patient in context (launch/patient)');

    const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId, clientId: params.client_id! });
    const prompt = details.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (prompt.missingOIDCScope) grant!.addOIDCScope(prompt.missingOIDCScope.join(' '));
    for (const [indicator, scopes] of Object.entries(prompt.missingResourceScopes ?? {})) grant!.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant!.save();
    await d.launches.setContext(
      grantId,
      {
        ...(patient ? { patient } : {}),
        ...(encounter ? { encounter } : {}),
        ...(ehr ? { need_patient_banner: false, smart_style_url: d.styleUrl() } : patient ? { need_patient_banner: true } : {}),
        ...(account?.fhirUser ? { fhirUser: account.fhirUser } : {}),
      },
      30 * 86400_000,
    );
    const to = await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(to);
  });
  return router;
}

function loginPage(uid: string, clientName: string, error?: string): string {
  return page(
    'Sign in',
    (clientName ? `<p>to continue to ${clientName}</p>` : '') +
      (error ? `<p role="alert" style="color:#b00">${escapeHtml(error)}</p>` : '') +
      `<form method="post" action="/auth/interaction/${escapeHtml(uid)}/login">` +
      `<label>E-mail <input name="email" type="email" autocomplete="username" required></label><br>` +
      `<label>Password <input name="password" type="password" autocomplete="current-password" required></label><br>` +
      `<button>Sign in</button></form>`,
  );
}

/** A standalone launch asking for a patient, by a user who is not themselves a patient. */
function needsPatientChoice(params: Record<string, unknown>, account: AccountInfo | undefined): boolean {
  if (params.launch) return false;
  const wants = /(^|\s)(launch\/patient|patient\/)/.test(String(params.scope ?? ''));
  return wants && account?.kind !== 'patient';
}

async function mayReachPatient(d: InteractionDeps, account: AccountInfo | undefined, patientId: string): Promise<boolean> {
  if (!account || !/^[A-Za-z0-9\-.]{1,64}$/.test(patientId)) return false;
  const policy = new AccessPolicy(
    { clientId: 'consent', scopes: parseScopes('user/Patient.r'), fhirUser: account.fhirUser, role: account.kind, organization: account.organization },
    d.repo,
    d.indexer,
  );
  try {
    const v = await d.repo.read('Patient', patientId);
    return await policy.permits('Patient', patientId, JSON.parse(v.json!), 'r');
  } catch {
    return false;
  }
}

async function interactionError(ctx: Context, provider: Provider, error: string, description: string) {
  const to = await provider.interactionResult(ctx.req, ctx.res, { error, error_description: description }, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(to);
}
