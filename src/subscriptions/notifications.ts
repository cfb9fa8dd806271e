import type { Bundle, BundleEntry, Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import { EXT, type NotificationType, type PayloadContent } from './backport.js';
import type { SubscriptionSpec } from './subscription-spec.js';
import type { EventDoc } from './store.js';

/** An event with the resource version it refers to (absent when it is a deletion or the reader may not see it). */
export interface LoadedEvent {
  event: EventDoc;
  resource?: Resource;
}

const methodOf = (e: EventDoc) => (e.method === 'DELETE' ? 'DELETE' : e.method === 'POST' ? 'POST' : 'PUT');
const statusOf = (e: EventDoc) => (e.method === 'DELETE' ? '204' : e.method === 'POST' ? '201' : '200');

/** The Backport SubscriptionStatus (R4: a Parameters resource). */
export function subscriptionStatus(spec: SubscriptionSpec, o: { baseUrl: string; type: NotificationType; eventsSinceStart: number; events: EventDoc[]; status?: string; error?: string }): Parameters {
  const parameter: ParametersParameter[] = [
    { name: 'subscription', valueReference: { reference: `${o.baseUrl}/Subscription/${spec.id}` } },
    ...(spec.topic ? [{ name: 'topic', valueCanonical: spec.topic }] : []),
    { name: 'status', valueCode: o.status ?? spec.status },
    { name: 'type', valueCode: o.type },
    { name: 'events-since-subscription-start', valueString: String(o.eventsSinceStart) },
    ...o.events.map((e) => ({
      name: 'notification-event',
      part: [
        { name: 'event-number', valueString: String(e.n) },
        { name: 'timestamp', valueInstant: e.at.toISOString() },
        ...(spec.channel.content !== 'empty' ? [{ name: 'focus', valueReference: { reference: `${o.baseUrl}/${e.type}/${e.id}/_history/${e.versionId}` } }] : []),
      ],
    })),
    ...(o.error ? [{ name: 'error', valueCodeableConcept: { text: o.error } }] : []),
  ];
  return { resourceType: 'Parameters', meta: { profile: [EXT.statusProfile] }, parameter };
}

/**
 * A Backport notification Bundle (type `history`): the SubscriptionStatus first, then per event its focus as the
 * payload content asks (`full-resource`: the resource; `id-only`: its URL and request; `empty`: nothing).
 */
export function notificationBundle(spec: SubscriptionSpec, o: { baseUrl: string; type: NotificationType; eventsSinceStart: number; events: LoadedEvent[]; content?: PayloadContent; status?: string; error?: string }): Bundle {
  const content = o.content ?? spec.channel.content;
  const status = subscriptionStatus({ ...spec, channel: { ...spec.channel, content } }, { ...o, events: o.events.map((e) => e.event) });
  const entries: BundleEntry[] = [{
    fullUrl: `urn:uuid:${crypto.randomUUID()}`,
    resource: status,
    request: { method: 'GET', url: `${o.baseUrl}/Subscription/${spec.id}/$status` },
    response: { status: '200' },
  }];
  if (content !== 'empty') {
    for (const { event, resource } of o.events) {
      entries.push({
        fullUrl: `${o.baseUrl}/${event.type}/${event.id}`,
        ...(content === 'full-resource' && resource && event.method !== 'DELETE' ? { resource } : {}),
        request: { method: methodOf(event), url: `${event.type}/${event.id}` },
        response: { status: statusOf(event) },
      });
    }
  }
  return { resourceType: 'Bundle', id: crypto.randomUUID(), meta: { profile: [EXT.notificationProfile] }, type: 'history', timestamp: new Date().toISOString(), entry: entries };
}
