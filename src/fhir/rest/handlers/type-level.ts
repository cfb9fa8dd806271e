import { errors, informational } from '../../outcomes.js';
import type { Handler, FhirRequest } from '../types.js';
import { versionHeaders } from '../headers.js';
import { writeResponse } from './write-response.js';
import { requireResourceBody } from './body.js';

/** Query parameters that shape the response rather than select resources. */
const RESULT_PARAMS = new Set(['_format', '_pretty']);

/** Criteria of a conditional interaction: the query string minus response-shaping parameters. */
export function criteriaOf(req: FhirRequest): string {
  const q = new URLSearchParams();
  for (const [k, v] of req.query) if (!RESULT_PARAMS.has(k)) q.append(k, v);
  return q.toString();
}

/** POST [type], optionally conditional with If-None-Exist (R4 3.1.0.8.3). */
export const create: Handler = async (req, { repo }, { type }) => {
  const resource = requireResourceBody(req, type!);
  const ifNoneExist = req.headers['if-none-exist'];
  const result = await repo.create(resource, ifNoneExist !== undefined ? { ifNoneExist } : {});
  if (result.matched) {
    // An existing resource matched: nothing was created (R4: 200 OK, no Location required).
    return { ...writeResponse(req, 200, result.version, 'An existing resource matched If-None-Exist; nothing created'), headers: versionHeaders(result.version, req.baseUrl) };
  }
  return writeResponse(req, 201, result.version, 'Created');
};

/** PUT [type]?criteria (R4 3.1.0.8.2). */
export const conditionalUpdate: Handler = async (req, { repo }, { type }) => {
  const criteria = criteriaOf(req);
  if (!criteria) throw errors.methodNotAllowed('PUT on a resource type needs search criteria (conditional update) or an id in the URL', ['GET', 'POST']);
  const resource = requireResourceBody(req, type!);
  const result = await repo.conditionalUpdate(type!, criteria, resource, { ifMatch: req.headers['if-match'] });
  return writeResponse(req, result.created ? 201 : 200, result.version, result.created ? 'Created' : 'Updated');
};

/** DELETE [type]?criteria (R4 3.1.0.8.4); more than one match is a 412. */
export const conditionalDelete: Handler = async (req, { repo }, { type }) => {
  const criteria = criteriaOf(req);
  if (!criteria) throw errors.methodNotAllowed('DELETE on a resource type needs search criteria (conditional delete)', ['GET', 'POST']);
  const v = await repo.conditionalDelete(type!, criteria);
  if (!v) return { status: 200, body: informational('No resource matched the criteria; nothing deleted') };
  return { status: 200, headers: { ETag: `W/"${v.versionId}"` }, body: informational(`Deleted ${type}/${v.id}`) };
};
