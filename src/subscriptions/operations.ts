import type { Bundle, Resource, Subscription } from '@medplum/fhirtypes';
import { errors } from '../fhir/outcomes.js';
import { paramValue, type BusinessOperation } from '../fhir/operations/registry.js';
import { parseResource } from '../fhir/storage/types.js';
import type { PayloadContent } from './backport.js';
import type { SubscriptionDirectory } from './directory.js';
import { notificationBundle, subscriptionStatus, type LoadedEvent } from './notifications.js';
import type { SubscriptionStore } from './store.js';

/** What the operations read besides the caller's repository (looked up only when a handler runs). */
export interface SubscriptionOperationPorts {
  store: SubscriptionStore;
  directory: SubscriptionDirectory;
}

const MAX_EVENTS = 100;

const nonNegative = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d{1,15}$/.test(v)) throw errors.badRequest(`${name} must be a non-negative integer, not '${v}'`);
  return Number(v);
};

/** `Subscription/[id]/$status` and `Subscription/[id]/$events` of the Subscriptions Backport IG. */
export function subscriptionOperations(ports: () => SubscriptionOperationPorts): BusinessOperation[] {
  const load = async (repo: Parameters<BusinessOperation['handler']>[1]['repo'], id: string) => {
    const sub = parseResource(await repo.read('Subscription', id)) as Subscription;
    return { sub, spec: { ...ports().directory.spec(sub), id } };
  };
  return [
    {
      name: 'status',
      levels: ['instance'],
      resourceTypes: ['Subscription'],
      methods: ['GET', 'POST'],
      affectsState: false,
      description: 'The status of a subscription (Backport SubscriptionStatus): its state, topic, the number of events since it started and the last delivery error.',
      parameters: [{ name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A searchset Bundle with one SubscriptionStatus (Parameters) of type query-status' }],
      handler: async (input, ctx) => {
        const { sub, spec } = await load(ctx.repo, input.target.id!);
        const { store } = ports();
        const [counter, state] = await Promise.all([store.counters.findOne({ _id: spec.id }), store.states.findOne({ _id: spec.id })]);
        const status = subscriptionStatus(spec, { baseUrl: ctx.baseUrl, type: 'query-status', eventsSinceStart: counter?.count ?? 0, events: [], error: sub.error ?? state?.lastError ?? undefined });
        const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', total: 1, entry: [{ fullUrl: `urn:uuid:${crypto.randomUUID()}`, resource: status, search: { mode: 'match' } }] };
        return { resource: bundle };
      },
    },
    {
      name: 'events',
      levels: ['instance'],
      resourceTypes: ['Subscription'],
      methods: ['GET', 'POST'],
      affectsState: false,
      description: 'Replays the events of a subscription by event number (eventsSinceNumber to eventsUntilNumber, at most 100), as a notification Bundle; focus resources only where the caller may read them.',
      parameters: [
        { name: 'eventsSinceNumber', use: 'in', min: 0, max: '1', type: 'string', documentation: 'First event number (default 1)' },
        { name: 'eventsUntilNumber', use: 'in', min: 0, max: '1', type: 'string', documentation: 'Last event number (default the latest)' },
        { name: 'content', use: 'in', min: 0, max: '1', type: 'code', documentation: 'empty | id-only | full-resource (default the subscription\'s)' },
        { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A history Bundle whose first entry is a SubscriptionStatus of type query-event' },
      ],
      handler: async (input, ctx) => {
        const { spec } = await load(ctx.repo, input.target.id!);
        const { store } = ports();
        const count = (await store.counters.findOne({ _id: spec.id }))?.count ?? 0;
        const since = nonNegative('eventsSinceNumber', paramValue(input, 'eventsSinceNumber')) ?? 1;
        const until = nonNegative('eventsUntilNumber', paramValue(input, 'eventsUntilNumber')) ?? count;
        if (until < since && paramValue(input, 'eventsUntilNumber') !== undefined) throw errors.badRequest('eventsUntilNumber must not be below eventsSinceNumber');
        const content = (paramValue(input, 'content') ?? spec.channel.content) as PayloadContent;
        if (!['empty', 'id-only', 'full-resource'].includes(content)) throw errors.badRequest(`content must be empty, id-only or full-resource, not '${content}'`);
        const docs = await store.events.find({ sub: spec.id, n: { $gte: since, $lte: Math.min(until, since + MAX_EVENTS - 1) } }).sort({ n: 1 }).toArray();
        const events: LoadedEvent[] = await Promise.all(docs.map(async (event) => {
          if (content !== 'full-resource' || event.method === 'DELETE') return { event };
          // Through the caller's repository: what they may not read is left out.
          const v = await ctx.repo.vread(event.type, event.id, event.versionId).catch(() => undefined);
          return { event, resource: v?.json ? (parseResource(v) as Resource) : undefined };
        }));
        return { resource: notificationBundle(spec, { baseUrl: ctx.baseUrl, type: 'query-event', eventsSinceStart: count, events, content }) };
      },
    },
  ];
}
