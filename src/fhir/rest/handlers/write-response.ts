import { informational } from '../../outcomes.js';
import type { ResourceVersion } from '../../storage/types.js';
import { preferredReturn, versionHeaders } from '../headers.js';
import type { FhirRequest, FhirResponse } from '../types.js';

/** The response to a create/update/patch, honouring `Prefer: return=` (R4 3.1.0.6). */
export function writeResponse(req: FhirRequest, status: number, version: ResourceVersion, message: string): FhirResponse {
  const headers = versionHeaders(version, req.baseUrl, true);
  switch (preferredReturn(req.headers.prefer)) {
    case 'minimal':
      return { status, headers };
    case 'OperationOutcome':
      return { status, headers, body: informational(message) };
    default:
      return { status, headers, body: { json: version.json! } };
  }
}
