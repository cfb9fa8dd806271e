import Router from '@koa/router';
import type { Context } from 'koa';
import { errors, issue } from '../fhir/outcomes.js';
import { FILES_PATH, STATUS_PATH, type BulkData } from './service.js';

/**
 * The status endpoint (GET: 202 with X-Progress and Retry-After while running, 200 with the manifest when
 * done; DELETE: cancel and remove) and the file endpoint, under the FHIR mount. Both need an access token of
 * the client that started the request.
 */
export function bulkRoutes(bulk: BulkData, mount: string): Router {
  const router = new Router({ prefix: mount });
  const caller = (ctx: Context) => bulk.deps.accessContext(ctx.get('authorization') || undefined);

  router.get(`/${STATUS_PATH}/:id`, async (ctx) => {
    const job = await bulk.jobFor(ctx.params.id!, await caller(ctx));
    ctx.set('Cache-Control', 'no-store');
    if (job.status !== 'completed') {
      ctx.status = 202;
      ctx.set('X-Progress', await bulk.progress(job));
      ctx.set('Retry-After', String(bulk.deps.config.retryAfterSeconds));
      ctx.type = 'application/fhir+json; charset=utf-8';
      ctx.body = JSON.stringify({ resourceType: 'OperationOutcome', issue: [issue('information', 'informational', 'In progress')] });
      return;
    }
    ctx.status = 200;
    if (job.expiresAt) ctx.set('Expires', job.expiresAt.toUTCString());
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = JSON.stringify(await bulk.manifest(job));
  });

  router.delete(`/${STATUS_PATH}/:id`, async (ctx) => {
    const job = await bulk.jobFor(ctx.params.id!, await caller(ctx));
    await bulk.remove(job._id);
    ctx.status = 202;
    ctx.type = 'application/fhir+json; charset=utf-8';
    ctx.body = JSON.stringify({ resourceType: 'OperationOutcome', issue: [issue('information', 'informational', `Bulk request ${job._id} cancelled; its files are removed`)] });
  });

  router.get(`/${FILES_PATH}/:id/:file`, async (ctx) => {
    const job = await bulk.jobFor(ctx.params.id!, await caller(ctx));
    const name = `${job._id}/${ctx.params.file}`;
    if (job.status !== 'completed' || !(await bulk.hasFile(job, name))) throw errors.notFound(`There is no file ${ctx.params.file} in bulk request ${job._id}`);
    const file = await bulk.files.open(name);
    if (!file) throw errors.notFound(`The file ${ctx.params.file} is gone`);
    ctx.status = 200;
    ctx.type = 'application/fhir+ndjson';
    ctx.length = file.size;
    if (job.expiresAt) ctx.set('Expires', job.expiresAt.toUTCString());
    ctx.body = file.stream;
  });

  // Any other method on these paths.
  router.all([`/${STATUS_PATH}/:id`, `/${FILES_PATH}/:id/:file`], (ctx) => {
    throw errors.methodNotAllowed(`${ctx.method} is not allowed here`, ctx.path.includes(FILES_PATH) ? ['GET'] : ['GET', 'DELETE']);
  });
  return router;
}
