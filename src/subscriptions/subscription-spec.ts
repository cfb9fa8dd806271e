import type { Extension, Subscription } from '@medplum/fhirtypes';
import type { AccessContext } from '../auth/access-policy.js';
import { parseScopes } from '../auth/smart-scopes.js';
import { errors } from '../fhir/outcomes.js';
import type { SearchParameterRegistry } from '../fhir/search/parameters.js';
import { EXT, type PayloadContent } from './backport.js';
import { compileCriteria, type CompiledCriteria } from './criteria.js';
import { topicByUrl } from './topics.js';

/** The owner recorded on a subscription: the access context of whoever created (or last changed) it, and since when it is active. */
export interface SubscriptionOwner {
  access: AccessContext;
  /** Changes committed at or after this instant notify it. */
  since: string;
}

/** A Subscription as the server acts on it. */
export interface SubscriptionSpec {
  id: string;
  versionId?: string;
  status: string;
  /** `query`: R4 criteria as a search; `topic`: the Backport form (criteria = topic canonical). */
  kind: 'query' | 'topic';
  topic?: string;
  resourceType: string;
  /** All must match (the query's criteria, or the topic's filter criteria). */
  filters: CompiledCriteria[];
  channel: {
    type: 'rest-hook' | 'email';
    endpoint: string;
    headers: [string, string][];
    /** MIME type of the payload (absent: no payload). */
    payload?: string;
    content: PayloadContent;
  };
  heartbeatSeconds?: number;
  timeoutSeconds: number;
  maxCount: number;
  /** R4 Subscription.end: no events from changes after it. */
  end?: string;
  owner?: SubscriptionOwner;
}

const PAYLOAD_TYPES = ['application/fhir+json', 'application/json', 'application/json+fhir'];
const bad = (text: string, path: string) => errors.businessRule(text, [path]);
const ext = (list: Extension[] | undefined, url: string) => (list ?? []).filter((e) => e.url === url);

/**
 * Reads and checks a Subscription: supported criteria (a search, or one of our topic canonicals with filter
 * criteria), channel (`rest-hook` with an http(s) endpoint, or `email` with a mailto: endpoint), payload and the
 * Backport channel extensions. Anything unsupported is a 422 naming the element; nothing is stored then.
 */
export function parseSubscription(sub: Subscription, registry: SearchParameterRegistry, opts: { baseUrl?: string; maxTimeoutSeconds: number; defaultTimeoutSeconds: number }): SubscriptionSpec {
  if (sub.resourceType !== 'Subscription') throw errors.badRequest('Not a Subscription');
  if (typeof sub.criteria !== 'string' || !sub.criteria.trim()) throw bad('Subscription.criteria is required', 'Subscription.criteria');
  const criteria = sub.criteria.trim();
  const filtersText = ext((sub as { _criteria?: { extension?: Extension[] } })._criteria?.extension, EXT.filterCriteria).map((e) => e.valueString);
  let kind: SubscriptionSpec['kind'];
  let topic: string | undefined;
  let resourceType: string;
  let filters: CompiledCriteria[];
  if (/^https?:\/\//.test(criteria)) {
    const t = topicByUrl(criteria);
    if (!t) throw bad(`Subscription.criteria: '${criteria}' is not a topic of this server (see the README's list of SubscriptionTopic canonicals)`, 'Subscription.criteria');
    kind = 'topic';
    topic = t.url;
    resourceType = t.resourceType;
    filters = filtersText.map((f, i) => {
      if (typeof f !== 'string' || !f.trim()) throw bad('backport-filter-criteria needs a valueString', `Subscription.criteria.extension[${i}]`);
      return compileCriteria(registry, f.trim(), { type: resourceType, baseUrl: opts.baseUrl, what: 'backport-filter-criteria' });
    });
  } else {
    if (filtersText.length) throw bad('backport-filter-criteria applies to topic-based subscriptions only', 'Subscription.criteria');
    kind = 'query';
    const compiled = compileCriteria(registry, criteria, { baseUrl: opts.baseUrl });
    resourceType = compiled.resourceType;
    filters = [compiled];
  }

  const ch = sub.channel as (Subscription['channel'] & { _payload?: { extension?: Extension[] } }) | undefined;
  if (!ch || typeof ch !== 'object') throw bad('Subscription.channel is required', 'Subscription.channel');
  if (ch.type !== 'rest-hook' && ch.type !== 'email') throw bad(`Subscription.channel.type '${String(ch.type)}' is not supported (rest-hook or email)`, 'Subscription.channel.type');
  const endpoint = typeof ch.endpoint === 'string' ? ch.endpoint.trim() : '';
  if (ch.type === 'rest-hook') {
    let u: URL;
    try {
      u = new URL(endpoint);
    } catch {
      throw bad(`Subscription.channel.endpoint '${endpoint}' is not a URL`, 'Subscription.channel.endpoint');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw bad('Subscription.channel.endpoint of a rest-hook must be an http(s) URL', 'Subscription.channel.endpoint');
    if (u.username || u.password) throw bad('Subscription.channel.endpoint must not carry credentials; use channel.header', 'Subscription.channel.endpoint');
  } else if (!/^mailto:[^\s@,;]+@[^\s@,;]+$/.test(endpoint)) {
    throw bad('Subscription.channel.endpoint of an email channel must be mailto:address', 'Subscription.channel.endpoint');
  }
  const headers: [string, string][] = (ch.header ?? []).map((h, i) => {
    const m = typeof h === 'string' ? /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*([^\r\n]*)$/.exec(h) : null;
    if (!m) throw bad(`Subscription.channel.header[${i}] must be 'Name: value'`, `Subscription.channel.header[${i}]`);
    return [m[1]!, m[2]!];
  });
  if (ch.type === 'email' && headers.length) throw bad('Subscription.channel.header applies to rest-hook channels only', 'Subscription.channel.header');
  const payload = ch.payload;
  if (payload !== undefined && !PAYLOAD_TYPES.includes(payload)) throw bad(`Subscription.channel.payload '${payload}' is not supported (application/fhir+json, or none)`, 'Subscription.channel.payload');
  const contentExt = ext(ch._payload?.extension, EXT.payloadContent)[0]?.valueCode;
  if (contentExt !== undefined && !['empty', 'id-only', 'full-resource'].includes(contentExt)) throw bad(`backport-payload-content '${contentExt}' must be empty, id-only or full-resource`, 'Subscription.channel.payload');
  if (contentExt && kind === 'query') throw bad('backport-payload-content applies to topic-based subscriptions only', 'Subscription.channel.payload');
  if (contentExt && contentExt !== 'empty' && payload === undefined) throw bad(`backport-payload-content ${contentExt} needs channel.payload (application/fhir+json)`, 'Subscription.channel.payload');
  const content: PayloadContent = (contentExt as PayloadContent | undefined) ?? (payload === undefined ? 'empty' : kind === 'query' ? 'full-resource' : 'id-only');

  const uint = (url: string, min: number, max: number): number | undefined => {
    const e = ext(ch.extension, url)[0];
    if (!e) return undefined;
    const v = e.valueUnsignedInt ?? e.valuePositiveInt ?? e.valueInteger;
    if (!Number.isInteger(v) || v! < min || v! > max) throw bad(`${url.split('/').pop()} must be an integer between ${min} and ${max}`, 'Subscription.channel.extension');
    return v;
  };
  const heartbeatSeconds = uint(EXT.heartbeatPeriod, 1, 86_400);
  const timeoutSeconds = uint(EXT.timeout, 1, opts.maxTimeoutSeconds) ?? opts.defaultTimeoutSeconds;
  const maxCount = uint(EXT.maxCount, 1, 1000) ?? 1;
  if (!['requested', 'active', 'error', 'off'].includes(sub.status as string)) throw bad(`Subscription.status '${String(sub.status)}' must be requested, active, error or off`, 'Subscription.status');
  return {
    id: sub.id ?? '', versionId: sub.meta?.versionId, status: sub.status as string, kind, topic, resourceType, filters,
    channel: { type: ch.type, endpoint, headers, payload, content }, heartbeatSeconds, timeoutSeconds, maxCount, owner: readOwner(sub),
    ...(sub.end ? { end: sub.end } : {}),
  };
}

/** The owner extension as stored (scopes as text, parsed again here). */
export function readOwner(sub: Subscription): SubscriptionOwner | undefined {
  const e = ext(sub.extension, EXT.owner)[0];
  if (!e?.valueString) return undefined;
  try {
    const o = JSON.parse(e.valueString) as { access: Omit<AccessContext, 'scopes'> & { scopes: string[] }; since: string };
    return { since: o.since, access: { ...o.access, scopes: parseScopes(o.access.scopes.join(' ')) } };
  } catch {
    return undefined;
  }
}

export function ownerExtension(owner: SubscriptionOwner): Extension {
  const { scopes, ...rest } = owner.access;
  return { url: EXT.owner, valueString: JSON.stringify({ since: owner.since, access: { ...rest, scopes: scopes.map((s) => s.text) } }) };
}
