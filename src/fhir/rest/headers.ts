import type { ResourceVersion } from '../storage/types.js';

/** ETag, Last-Modified and Location of a stored version (R4 3.1.0.4, 3.1.0.5). */
export function versionHeaders(v: ResourceVersion, baseUrl: string, withLocation = false): Record<string, string> {
  const h: Record<string, string> = {
    ETag: `W/"${v.versionId}"`,
    'Last-Modified': new Date(v.lastUpdated).toUTCString(),
  };
  if (withLocation) h.Location = `${baseUrl}/${v.resourceType}/${v.id}/_history/${v.versionId}`;
  return h;
}

/** Parses `Prefer: return=…` (R4 3.1.0.6); defaults to representation. */
export function preferredReturn(prefer: string | undefined): 'minimal' | 'representation' | 'OperationOutcome' {
  const m = /(?:^|[;,\s])return\s*=\s*"?(minimal|representation|OperationOutcome)"?/i.exec(prefer ?? '');
  if (!m) return 'representation';
  const v = m[1]!.toLowerCase();
  return v === 'minimal' ? 'minimal' : v === 'operationoutcome' ? 'OperationOutcome' : 'representation';
}
