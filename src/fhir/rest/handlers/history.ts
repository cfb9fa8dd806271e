import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import { errors } from '../../outcomes.js';
import type { ResourceVersion } from '../../storage/types.js';
import type { FhirRequest, Handler, HandlerContext } from '../types.js';

/** GET [base]/_history, [type]/_history, [type]/[id]/_history (R4 3.1.0.10). */
export const history: Handler = async (req, ctx, { type, id }) => {
  const count = parseCount(req.query.get('_count'), ctx);
  const since = parseInstant(req.query.get('_since'), '_since');
  const atValue = req.query.get('_at');
  const atStart = parseInstant(atValue, '_at');
  const at = atStart && atValue ? { start: atStart, end: rangeEnd(atStart, atValue) } : undefined;
  const cursor = req.query.get('_cursor') ?? undefined;
  const page = await ctx.repo.history({ resourceType: type, id, since, at, count, cursor });
  if (type && id && page.total === 0 && !since && !at && !cursor) throw errors.notFound(`${type}/${id} not found`);
  const selfPath = [type, id, '_history'].filter(Boolean).join('/');
  const link = (params: Record<string, string | undefined>) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ _count: String(count), _since: req.query.get('_since') ?? undefined, _at: req.query.get('_at') ?? undefined, ...params })) if (v) q.set(k, v);
    return `${req.baseUrl}/${selfPath}?${q.toString()}`;
  };
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'history',
    total: page.total,
    link: [
      { relation: 'self', url: link({ _cursor: cursor }) },
      { relation: 'first', url: link({}) },
      ...(page.nextCursor ? [{ relation: 'next', url: link({ _cursor: page.nextCursor }) }] : []),
    ],
    entry: page.versions.map((v) => historyEntry(req, v)),
  };
  return { status: 200, body: bundle };
};

function historyEntry(req: FhirRequest, v: ResourceVersion): BundleEntry {
  const url = `${v.resourceType}/${v.id}`;
  return {
    fullUrl: `${req.baseUrl}/${url}`,
    ...(v.json ? { resource: JSON.parse(v.json) } : {}),
    request: { method: v.method, url: v.method === 'POST' ? v.resourceType : url },
    response: {
      status: v.method === 'POST' ? '201 Created' : v.method === 'DELETE' ? '204 No Content' : '200 OK',
      etag: `W/"${v.versionId}"`,
      lastModified: v.lastUpdated,
    },
  };
}

export function parseCount(value: string | null, ctx: Pick<HandlerContext, 'searchDefaultCount' | 'searchMaxCount'>): number {
  if (value === null || value === '') return ctx.searchDefaultCount;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw errors.badRequest(`_count must be a non-negative integer, not '${value}'`);
  return Math.min(n, ctx.searchMaxCount);
}

/** End (exclusive) of the period a partial date or dateTime stands for (R4 2.1.0.x date precision). */
function rangeEnd(start: Date, value: string): Date {
  const d = new Date(start);
  if (/^\d{4}$/.test(value)) d.setUTCFullYear(d.getUTCFullYear() + 1);
  else if (/^\d{4}-\d{2}$/.test(value)) d.setUTCMonth(d.getUTCMonth() + 1);
  else if (/^\d{4}-\d{2}-\d{2}$/.test(value)) d.setUTCDate(d.getUTCDate() + 1);
  else if (/T\d{2}:\d{2}(Z|[+-]|$)/.test(value)) d.setUTCMinutes(d.getUTCMinutes() + 1);
  else if (/:\d{2}\.\d+/.test(value)) d.setUTCMilliseconds(d.getUTCMilliseconds() + 1);
  else d.setUTCSeconds(d.getUTCSeconds() + 1);
  return d;
}

function parseInstant(value: string | null, name: string): Date | undefined {
  if (!value) return undefined;
  if (!/^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/.test(value)) {
    throw errors.badRequest(`${name} must be a FHIR instant such as 2024-01-31T12:00:00Z, not '${value}'`);
  }
  const d = new Date(value.length === 4 ? `${value}-01-01` : value);
  if (Number.isNaN(d.getTime())) throw errors.badRequest(`${name} '${value}' is not a valid date`);
  return d;
}
