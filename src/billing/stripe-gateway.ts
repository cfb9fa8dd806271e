import Stripe from 'stripe';

export interface StripeSettings {
  /** `sk_live_…`/`sk_test_…`; unset: payments are switched off ($pay answers 503). */
  secretKey?: string;
  /** `whsec_…` of the webhook endpoint; unset: POST /webhooks/stripe answers 503. */
  webhookSecret?: string;
  /** Another API base, e.g. stripe-mock's `http://127.0.0.1:12111`; unset: api.stripe.com. */
  apiBase?: string;
}

export interface Intent {
  id: string;
  clientSecret: string;
  status: string;
}

/** The few Stripe calls billing makes, through the official SDK. */
export class StripeGateway {
  private client?: Stripe;
  readonly enabled: boolean;

  constructor(private readonly settings: StripeSettings) {
    this.enabled = !!settings.secretKey;
  }

  /** The SDK client, made on first use (a server without Stripe keys never makes one). */
  private get stripe(): Stripe {
    if (!this.client) {
      const base = this.settings.apiBase ? new URL(this.settings.apiBase) : undefined;
      this.client = new Stripe(this.settings.secretKey ?? 'sk_test_unconfigured', {
        maxNetworkRetries: 2,
        timeout: 20_000,
        ...(base ? { host: base.hostname, port: base.port || (base.protocol === 'https:' ? 443 : 80), protocol: base.protocol === 'http:' ? 'http' : 'https' } : {}),
      });
    }
    return this.client;
  }

  get webhooksEnabled(): boolean {
    return !!this.settings.webhookSecret;
  }

  /** A PaymentIntent; the idempotency key makes a retried create return the same intent (at Stripe). */
  async createIntent(p: { amount: number; currency: string; description: string; metadata: Record<string, string>; idempotencyKey: string }): Promise<Intent> {
    const pi = await this.stripe.paymentIntents.create(
      { amount: p.amount, currency: p.currency.toLowerCase(), description: p.description, metadata: p.metadata, automatic_payment_methods: { enabled: true } },
      { idempotencyKey: p.idempotencyKey },
    );
    return { id: pi.id, clientSecret: pi.client_secret ?? '', status: pi.status };
  }

  async cancelIntent(id: string): Promise<void> {
    await this.stripe.paymentIntents.cancel(id);
  }

  async refund(p: { intent: string; amount: number; idempotencyKey: string; metadata: Record<string, string> }): Promise<{ id: string; status: string }> {
    const r = await this.stripe.refunds.create({ payment_intent: p.intent, amount: p.amount, metadata: p.metadata }, { idempotencyKey: p.idempotencyKey });
    return { id: r.id, status: r.status ?? 'pending' };
  }

  /** The event, if the signature over the raw body is valid for our webhook secret; throws otherwise. */
  verify(raw: Buffer, signature: string): Stripe.Event {
    return this.stripe.webhooks.constructEvent(raw, signature, this.settings.webhookSecret!);
  }
}
