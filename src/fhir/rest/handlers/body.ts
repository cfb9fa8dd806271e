import type { Resource } from '@medplum/fhirtypes';
import { errors } from '../../outcomes.js';
import type { FhirRequest } from '../types.js';

/** The request body as a resource of the URL's type, or a 400 saying what is wrong. */
export function requireResourceBody(req: FhirRequest, type: string): Resource {
  const body = req.body;
  if (body === undefined || body === null || body === '') throw errors.badRequest('The request needs a FHIR resource as its JSON body');
  if (typeof body !== 'object' || Array.isArray(body)) throw errors.badRequest('The request body must be a JSON object (a FHIR resource)');
  const rt = (body as { resourceType?: unknown }).resourceType;
  if (typeof rt !== 'string') throw errors.badRequest('The resource in the body has no resourceType', ['resourceType']);
  if (rt !== type) throw errors.badRequest(`Resource type '${rt}' in the body does not match '${type}' in the URL`, ['resourceType']);
  return body as Resource;
}
