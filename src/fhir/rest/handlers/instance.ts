import type { Resource } from '@medplum/fhirtypes';
import type { Operation } from 'fast-json-patch';
import { errors, informational } from '../../outcomes.js';
import { versionHeaders } from '../headers.js';
import type { FhirRequest, Handler } from '../types.js';
import { writeResponse } from './write-response.js';
import { requireResourceBody } from './body.js';

/** GET [type]/[id] with If-None-Match / If-Modified-Since (R4 3.1.0.4, 3.1.0.8.1). */
export const read: Handler = async (req, { repo }, { type, id }) => {
  const v = await repo.read(type!, id!);
  const headers = versionHeaders(v, req.baseUrl);
  if (notModified(req, v.versionId, v.lastUpdated)) return { status: 304, headers };
  return { status: 200, headers, body: { json: v.json! } };
};

/** GET [type]/[id]/_history/[vid]. */
export const vread: Handler = async (req, { repo }, { type, id, vid }) => {
  const v = await repo.vread(type!, id!, vid!);
  const headers = versionHeaders(v, req.baseUrl);
  if (notModified(req, v.versionId, v.lastUpdated)) return { status: 304, headers };
  return { status: 200, headers, body: { json: v.json! } };
};

/** PUT [type]/[id]: update, or update-as-create with a client-chosen id (R4 3.1.0.5). */
export const update: Handler = async (req, { repo }, { type, id }) => {
  const resource = requireResourceBody(req, type!);
  if (resource.id === undefined) throw errors.badRequest('The resource in the body of an update must have an id', [`${type}.id`]);
  if (resource.id !== id) throw errors.badRequest(`Resource id '${resource.id}' in the body does not match '${id}' in the URL`, [`${type}.id`]);
  const result = await repo.update(resource, { ifMatch: req.headers['if-match'] });
  return writeResponse(req, result.created ? 201 : 200, result.version, result.created ? 'Created' : 'Updated');
};

/** PATCH [type]/[id] with a JSON Patch document (R4 3.1.0.7). */
export const patch: Handler = async (req, { repo }, { type, id }) => {
  const contentType = req.headers['content-type'] ?? '';
  if (!/application\/json-patch\+json/i.test(contentType)) {
    throw errors.unsupportedMediaType('PATCH needs Content-Type application/json-patch+json (JSON Patch); FHIRPath Patch is not supported');
  }
  const result = await repo.patch(type!, id!, req.body as Operation[], { ifMatch: req.headers['if-match'] });
  return writeResponse(req, 200, result.version, 'Patched');
};

/** DELETE [type]/[id]: a tombstone version; deleting what is absent is not an error (R4 3.1.0.7.1). */
export const remove: Handler = async (req, { repo }, { type, id }) => {
  const v = await repo.delete(type!, id!, { ifMatch: req.headers['if-match'] });
  if (!v) return { status: 200, body: informational(`${type}/${id} does not exist or is already deleted; nothing to delete`) };
  return { status: 200, headers: { ETag: `W/"${v.versionId}"` }, body: informational(`Deleted ${type}/${id}`) };
};

function notModified(req: FhirRequest, versionId: string, lastUpdated: string): boolean {
  const inm = req.headers['if-none-match'];
  if (inm) return inm.split(',').some((t) => t.trim() === '*' || t.trim().replace(/^W\//, '') === `"${versionId}"`);
  const ims = req.headers['if-modified-since'];
  if (ims) {
    const since = Date.parse(ims);
    // HTTP dates have whole seconds: compare at that precision.
    return !Number.isNaN(since) && Math.floor(Date.parse(lastUpdated) / 1000) * 1000 <= since;
  }
  return false;
}

export type { Resource };
