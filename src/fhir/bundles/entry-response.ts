import type { BundleEntry, BundleEntryResponse, OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { OperationOutcomeError } from '../outcomes.js';
import type { FhirResponse } from '../rest/types.js';

const REASONS: Record<number, string> = {
  200: 'OK', 201: 'Created', 204: 'No Content', 304: 'Not Modified', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
  404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict', 410: 'Gone', 412: 'Precondition Failed', 413: 'Payload Too Large',
  415: 'Unsupported Media Type', 422: 'Unprocessable Entity', 429: 'Too Many Requests', 500: 'Internal Server Error',
};

export function statusLine(status: number): string {
  return `${status} ${REASONS[status] ?? ''}`.trim();
}

/** A Bundle response entry from a handler's response (R4 Bundle.entry.response). */
export function entryFromResponse(res: FhirResponse): BundleEntry {
  const h = res.headers ?? {};
  const response: BundleEntryResponse = { status: statusLine(res.status) };
  if (h.Location) response.location = h.Location;
  if (h.ETag) response.etag = h.ETag;
  if (h['Last-Modified']) response.lastModified = new Date(h['Last-Modified']).toISOString();
  let resource: Resource | undefined;
  if (res.body) resource = ('json' in res.body && typeof res.body.json === 'string' ? JSON.parse(res.body.json) : res.body) as Resource;
  if (resource?.resourceType === 'OperationOutcome' && res.status !== 200) return { response: { ...response, outcome: resource } };
  return resource ? { resource, response } : { response };
}

export function entryFromError(err: OperationOutcomeError): BundleEntry {
  return { response: { status: statusLine(err.status), outcome: err.outcome as OperationOutcome } };
}
