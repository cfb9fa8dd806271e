/**
 * SMART App Launch scopes (2.x, with 1.0 compatibility): `patient/Observation.rs`, `user/*.cruds`,
 * `system/Patient.read`, and granular v2 scopes with a search restriction
 * (`patient/Observation.rs?category=http://…|laboratory`).
 */

export type Permission = 'c' | 'r' | 'u' | 'd' | 's';
export type ScopeContext = 'patient' | 'user' | 'system';

export interface ResourceScope {
  context: ScopeContext;
  /** A resource type, or `*`. */
  type: string;
  permissions: Set<Permission>;
  /** v2 granular restriction: search parameters the resource must match. */
  query: [string, string][];
  /** The scope as granted. */
  text: string;
}

// Letters must be a non-empty, in-order subset of "cruds" (SMART 2 scopes-and-launch-context).
const SCOPE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|(?=[cruds])c?r?u?d?s?)(\?\S+)?$/;

/** Context and identity scopes the authorization server understands besides resource scopes. */
export const CONTEXT_SCOPES = ['openid', 'fhirUser', 'profile', 'offline_access', 'online_access', 'launch', 'launch/patient', 'launch/encounter', 'metrics'];

/** Parses one resource scope, or undefined when it is not one (context scopes, malformed ones). */
export function parseResourceScope(text: string): ResourceScope | undefined {
  const m = SCOPE.exec(text);
  if (!m) return undefined;
  const [, context, type, access, query] = m as unknown as [string, ScopeContext, string, string, string | undefined];
  // SMART 1.0: read = rs, write = cud, * = cruds.
  const letters = access === 'read' ? 'rs' : access === 'write' ? 'cud' : access === '*' ? 'cruds' : access;
  return {
    context,
    type,
    permissions: new Set(letters.split('') as Permission[]),
    query: query ? [...new URLSearchParams(query.slice(1))] : [],
    text,
  };
}

export function parseScopes(scope: string | undefined): ResourceScope[] {
  return (scope ?? '').split(/\s+/).map(parseResourceScope).filter((s): s is ResourceScope => !!s);
}

/** Whether `requested` is a valid scope this server can grant (resource or context scope). */
export function isGrantableScope(requested: string): boolean {
  return CONTEXT_SCOPES.includes(requested) || !!parseResourceScope(requested);
}

/**
 * Whether a client allowed `allowed` scopes may be granted `requested`: the same context, a type the
 * allowed scope covers (`*` covers all), a subset of its permissions, and at least its restriction.
 */
export function scopeWithin(requested: string, allowed: string[]): boolean {
  if (CONTEXT_SCOPES.includes(requested)) return allowed.includes(requested) || allowed.some((a) => a === '*');
  const r = parseResourceScope(requested);
  if (!r) return false;
  return allowed.some((a) => {
    const s = parseResourceScope(a);
    if (!s || s.context !== r.context) return false;
    if (s.type !== '*' && s.type !== r.type) return false;
    if (![...r.permissions].every((p) => s.permissions.has(p))) return false;
    return s.query.every(([k, v]) => r.query.some(([k2, v2]) => k2 === k && v2 === v));
  });
}

/** Human words for the consent page. */
export function describeScope(text: string): string {
  const words: Record<string, string> = {
    openid: 'Confirm who you are', fhirUser: 'Know which person record is yours', profile: 'See your name',
    offline_access: 'Keep access when you are not using the app', online_access: 'Keep access while you are signed in',
    launch: 'Open with the record you have open', 'launch/patient': 'Choose a patient to work with', 'launch/encounter': 'Know the current visit',
    metrics: "Read the server's operational metrics",
  };
  if (words[text]) return words[text]!;
  const s = parseResourceScope(text);
  if (!s) return text;
  const verbs = [...s.permissions].map((p) => ({ c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' })[p]);
  const what = s.type === '*' ? 'all kinds of records' : `${s.type} records`;
  const whose = s.context === 'patient' ? 'of the selected patient' : s.context === 'user' ? 'you have access to' : 'on the whole server';
  const restriction = s.query.length ? ` where ${s.query.map(([k, v]) => `${k} is ${v}`).join(' and ')}` : '';
  return `${verbs.join(', ')} ${what} ${whose}${restriction}`;
}
