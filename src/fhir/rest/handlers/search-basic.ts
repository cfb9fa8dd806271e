import type { Bundle } from '@medplum/fhirtypes';
import type { Handler } from '../types.js';
import { criteriaOf } from './type-level.js';
import { parseCount } from './history.js';

/**
 * GET [type]: a searchset over the criteria the repository understands (`_id`, `identifier`).
 * Unsupported parameters are refused with 400 rather than silently ignored.
 */
export const search: Handler = async (req, ctx, { type }) => {
  const count = parseCount(req.query.get('_count'), ctx);
  const q = new URLSearchParams(criteriaOf(req));
  q.delete('_count');
  const criteria = q.toString();
  const versions = await ctx.repo.findByCriteria(type!, criteria, count);
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'searchset',
    link: [{ relation: 'self', url: `${req.baseUrl}/${type}?${req.query.toString()}` }],
    entry: versions.map((v) => ({ fullUrl: `${req.baseUrl}/${v.resourceType}/${v.id}`, resource: JSON.parse(v.json!), search: { mode: 'match' } })),
  };
  return { status: 200, body: bundle };
};
