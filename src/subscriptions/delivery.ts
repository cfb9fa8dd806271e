import type { Resource, Subscription } from '@medplum/fhirtypes';
import type { Logger } from '../infra/logger.js';
import type { Mailer } from '../infra/mailer.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import type { NotificationType } from './backport.js';
import type { SubscriptionDirectory } from './directory.js';
import type { EndpointPolicy } from './endpoint-policy.js';
import { notificationBundle, type LoadedEvent } from './notifications.js';
import { sendHook, type HookRequest } from './rest-hook.js';
import type { SubscriptionSpec } from './subscription-spec.js';
import type { EventDoc, SlotLeases, StateDoc, SubscriptionStore } from './store.js';

export interface DeliveryOptions {
  store: SubscriptionStore;
  /** The server's own repository: the owner's access was checked when the event was made. */
  repo: FhirRepository;
  directory: SubscriptionDirectory;
  leases: SlotLeases;
  mailer: Mailer;
  policy: EndpointPolicy;
  logger: Logger;
  baseUrl: () => string;
  /** How long a failing subscription is retried before it is set to `error`. */
  retryMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

/**
 * Delivers each subscription's events in order, in whichever process holds that subscription's lease (one at a
 * time, so each event is sent once per subscription unless a receiver fails to answer in time; receivers
 * de-duplicate by the event number/id they are given). Event n+1 is never sent before n succeeded; a failure is
 * retried with exponential back-off and jitter until `retryMs` has passed since the first failure, then the
 * Subscription gets status `error` with the last error. Progress is in the database, so a restart resumes.
 */
export class Delivery {
  private readonly busy = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  /** Notifications this process has sent successfully (tests and logs). */
  sent = 0;

  constructor(private readonly o: DeliveryOptions) {}

  async runOnce(): Promise<void> {
    const subs = await this.o.directory.active();
    for (const spec of subs) {
      if (this.busy.has(spec.id) || !spec.owner) continue;
      const state = (await this.o.store.states.findOne({ _id: spec.id })) ?? { _id: spec.id, delivered: 0 };
      if (state.nextAttemptAt && state.nextAttemptAt.getTime() > Date.now()) continue;
      const count = (await this.o.store.counters.findOne({ _id: spec.id }))?.count ?? 0;
      if (state.delivered >= count && !this.heartbeatDue(spec, state) && !this.handshakeDue(spec, state)) continue;
      const until = await this.o.leases.hold(`deliver:${spec.id}`, spec.timeoutSeconds * 1000 + 2_000);
      if (!until) continue;
      this.busy.add(spec.id);
      const p = this.deliver(spec, until)
        .catch((err) => this.o.logger.error({ err, subscription: spec.id }, 'subscription delivery failed unexpectedly'))
        .finally(() => {
          this.busy.delete(spec.id);
          this.running.delete(p);
        });
      this.running.add(p);
    }
  }

  async idle(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  /**
   * Backport rest-hook subscriptions get a `handshake` notification before their first event (and again after
   * each re-activation), so an endpoint learns of the subscription and the server that it is reachable; events
   * wait until it was accepted, and a handshake that keeps failing sets the subscription to `error`.
   */
  private handshakeDue(spec: SubscriptionSpec, state: StateDoc): boolean {
    return spec.kind === 'topic' && spec.channel.type === 'rest-hook' && state.handshakeFor !== spec.owner!.since;
  }

  private heartbeatDue(spec: SubscriptionSpec, state: StateDoc): boolean {
    if (!spec.heartbeatSeconds) return false;
    const last = state.lastSentAt?.getTime() ?? Date.parse(spec.owner!.since);
    return Date.now() - last >= spec.heartbeatSeconds * 1000;
  }

  private async deliver(spec: SubscriptionSpec, until: number): Promise<void> {
    const needMs = spec.timeoutSeconds * 1000 + 1_000;
    // Re-read under the lease: another holder may have progressed since the check above.
    const state: StateDoc = (await this.o.store.states.findOne({ _id: spec.id })) ?? { _id: spec.id, delivered: 0 };
    if (state.nextAttemptAt && state.nextAttemptAt.getTime() > Date.now()) return;
    if (this.handshakeDue(spec, state)) {
      if (Date.now() > until - needMs) return;
      if (!(await this.attempt(spec, state, 'handshake', [], state.delivered))) return;
      state.handshakeFor = spec.owner!.since;
      await this.save(state);
    }
    for (;;) {
      if (Date.now() > until - needMs) return; // the lease ends before a send could finish
      const count = (await this.o.store.counters.findOne({ _id: spec.id }))?.count ?? 0;
      if (state.delivered >= count) {
        if (!this.heartbeatDue(spec, state)) return;
        if (await this.attempt(spec, state, 'heartbeat', [], count)) await this.save(state);
        return;
      }
      const fetched = await this.o.store.events.find({ sub: spec.id, n: { $gt: state.delivered } }).sort({ n: 1 }).limit(50).toArray();
      // Contiguous from the next number only (a gap means the fan-out is still writing).
      const run: EventDoc[] = [];
      for (const e of fetched) if (e.n === state.delivered + run.length + 1) run.push(e);
      if (!run.length) return;
      const max = spec.kind === 'topic' ? spec.maxCount : 1;
      for (let i = 0; i < run.length; i += max) {
        if (Date.now() > until - needMs) return;
        const events = run.slice(i, i + max);
        const last = events[events.length - 1]!.n;
        if (!(await this.attempt(spec, state, 'event-notification', events, last))) return;
        state.delivered = last;
        await this.save(state);
      }
    }
  }

  /** Sends one notification; false (and the failure recorded) when it was not accepted. */
  private async attempt(spec: SubscriptionSpec, state: StateDoc, type: NotificationType, events: EventDoc[], eventsSinceStart: number): Promise<boolean> {
    try {
      await this.send(spec, type, events, eventsSinceStart);
    } catch (err) {
      await this.failed(spec, state, err as Error);
      return false;
    }
    this.sent++;
    Object.assign(state, { lastSentAt: new Date(), attempts: 0, firstFailureAt: null, nextAttemptAt: null, lastError: null });
    return true;
  }

  private async save(state: StateDoc): Promise<void> {
    await this.o.store.states.replaceOne({ _id: state._id }, state, { upsert: true });
  }

  private async failed(spec: SubscriptionSpec, state: StateDoc, err: Error): Promise<void> {
    const now = Date.now();
    const attempts = (state.attempts ?? 0) + 1;
    const first = state.firstFailureAt ?? new Date(now);
    state.lastError = err.message;
    if (now - first.getTime() >= this.o.retryMs) {
      this.o.logger.warn({ subscription: spec.id, attempts, error: err.message }, 'subscription failed for too long: status error');
      await this.markError(spec, err.message);
      Object.assign(state, { attempts: 0, firstFailureAt: null, nextAttemptAt: null });
    } else {
      // Exponential back-off with full jitter in [50%, 100%] of the step, capped.
      const step = Math.min(this.o.backoffMaxMs, this.o.backoffBaseMs * 2 ** (attempts - 1));
      const delay = Math.round(step * (0.5 + Math.random() * 0.5));
      Object.assign(state, { attempts, firstFailureAt: first, nextAttemptAt: new Date(now + delay) });
      this.o.logger.info({ subscription: spec.id, attempts, retryInMs: delay, error: err.message }, 'subscription notification failed; retrying');
    }
    await this.o.store.states.replaceOne({ _id: spec.id }, state, { upsert: true });
  }

  private async markError(spec: SubscriptionSpec, message: string): Promise<void> {
    const current = await this.o.repo.read('Subscription', spec.id).catch(() => undefined);
    if (!current?.json) return;
    const sub = parseResource(current) as Subscription;
    if (sub.status !== 'active') return;
    await this.o.repo.update({ ...sub, status: 'error', error: message.slice(0, 1000) }, { ifMatch: current.versionId }).catch((err) => {
      if ((err as { status?: number }).status !== 412) throw err; // changed meanwhile: the new version decides
    });
  }

  private async load(events: EventDoc[], spec: SubscriptionSpec): Promise<LoadedEvent[]> {
    return Promise.all(events.map(async (event) => {
      if (spec.channel.content !== 'full-resource' || event.method === 'DELETE') return { event };
      const v = await this.o.repo.vread(event.type, event.id, event.versionId);
      return { event, resource: v.json ? (parseResource(v) as Resource) : undefined };
    }));
  }

  private async send(spec: SubscriptionSpec, type: NotificationType, events: EventDoc[], eventsSinceStart: number): Promise<void> {
    const baseUrl = this.o.baseUrl();
    const loaded = await this.load(events, spec);
    const last = events[events.length - 1];
    const ids: Record<string, string> = {
      'x-medivoy-subscription': `Subscription/${spec.id}`,
      'x-medivoy-notification-type': type,
      'x-medivoy-events-since-start': String(eventsSinceStart),
      ...(last ? { 'x-medivoy-event-number': String(last.n), 'x-medivoy-event-id': `${spec.id}-${last.n}` } : {}),
    };
    if (spec.channel.type === 'email') {
      const to = spec.channel.endpoint.slice('mailto:'.length);
      const what = last ? `${last.method === 'DELETE' ? 'deleted' : last.method === 'POST' ? 'created' : 'updated'} ${last.type}/${last.id}` : type;
      const body = spec.channel.content === 'empty' || !last ? '' : spec.channel.content === 'id-only' ? `${baseUrl}/${last.type}/${last.id}/_history/${last.versionId}\n`
        : `${JSON.stringify(loaded[loaded.length - 1]?.resource ?? null, null, 2)}\n`;
      const text = `Subscription/${spec.id} ${type}; events since subscription start: ${eventsSinceStart}.\n${body}`;
      const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
      await this.o.mailer.send({ to, subject: `Medivoy subscription ${spec.id}: ${what}${last ? ` (event ${last.n})` : ''}`, text, html: `<pre>${escaped}</pre>` });
      return;
    }
    const headers: Record<string, string> = { ...ids };
    for (const [name, value] of spec.channel.headers) headers[name.toLowerCase()] = value;
    let req: HookRequest;
    if (spec.kind === 'query' && type === 'event-notification') {
      const one = loaded[0]!;
      if (spec.channel.content === 'full-resource' && one.resource) {
        // R4 rest-hook with a payload: the resource is PUT to [endpoint]/[type]/[id].
        req = { method: 'PUT', url: `${spec.channel.endpoint.replace(/\/+$/, '')}/${one.event.type}/${one.event.id}`, headers: { ...headers, 'content-type': 'application/fhir+json' }, body: JSON.stringify(one.resource), timeoutMs: spec.timeoutSeconds * 1000 };
      } else {
        req = { method: 'POST', url: spec.channel.endpoint, headers: spec.channel.payload ? { ...headers, 'x-medivoy-focus': `${one.event.type}/${one.event.id}`, 'x-medivoy-method': one.event.method } : headers, timeoutMs: spec.timeoutSeconds * 1000 };
      }
    } else {
      const bundle = notificationBundle(spec, { baseUrl, type, eventsSinceStart, events: loaded });
      req = { method: 'POST', url: spec.channel.endpoint, headers: { ...headers, 'content-type': 'application/fhir+json' }, body: JSON.stringify(bundle), timeoutMs: spec.timeoutSeconds * 1000 };
    }
    await sendHook(req, this.o.policy);
  }
}
