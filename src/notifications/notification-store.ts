import type { Collection, Db } from 'mongodb';

export const CHANNELS = ['email', 'in-app', 'sms', 'push'] as const;
export type Channel = (typeof CHANNELS)[number];
export type ChannelPreferences = Record<Channel, boolean>;

/** Until a user says otherwise: e-mail and in-app (SMS and push have no provider yet, see README). */
export const DEFAULT_PREFERENCES: ChannelPreferences = { email: true, 'in-app': true, sms: false, push: false };

interface PreferenceDoc {
  /** The account id. */
  _id: string;
  /** The account's `Patient/…` or `Practitioner/…`: notifications are addressed to FHIR recipients. */
  fhirUser?: string;
  channels: ChannelPreferences;
  updatedAt: Date;
}

interface DeliveryDoc {
  /** What was delivered, e.g. `reminder|Appointment/1|2030-01-01T09:00:00Z|2h|email`. */
  _id: string;
  at: Date;
  /** Set while a process is sending it: until `exp`, after which the sender is presumed dead (absent: sent). */
  sending?: boolean;
  exp?: Date;
}

/** Another process is sending this notification right now: the job retries later (and sends it if that one died). */
export class DeliveryInProgress extends Error {
  constructor(key: string) {
    super(`another process is sending ${key}`);
    this.name = 'DeliveryInProgress';
  }
}

const isDuplicateKey = (err: unknown) => (err as { code?: number }).code === 11000;

/**
 * Per-account channel preferences (a small collection beside `accounts`, which the accounts module owns)
 * and the delivery ledger that keeps a notification from going out twice.
 */
export class NotificationStore {
  private readonly prefs: Collection<PreferenceDoc>;
  private readonly deliveries: Collection<DeliveryDoc>;

  constructor(
    db: Db,
    /** How long a claim made for sending lasts before another process may take it over (the job lease). */
    private readonly sendingLeaseMs = 10 * 60_000,
  ) {
    this.prefs = db.collection<PreferenceDoc>('notification_preferences');
    this.deliveries = db.collection<DeliveryDoc>('notification_deliveries');
  }

  async init(): Promise<void> {
    await this.prefs.createIndex({ fhirUser: 1 }, { name: 'fhir_user' });
  }

  async forAccount(accountId: string): Promise<ChannelPreferences> {
    const doc = await this.prefs.findOne({ _id: accountId });
    return { ...DEFAULT_PREFERENCES, ...doc?.channels };
  }

  /** Preferences of whoever signs in as `fhirUser` (defaults when they never chose, or have no account). */
  async forRecipient(fhirUser: string): Promise<ChannelPreferences> {
    const doc = await this.prefs.findOne({ fhirUser });
    return { ...DEFAULT_PREFERENCES, ...doc?.channels };
  }

  async save(accountId: string, fhirUser: string | undefined, channels: ChannelPreferences): Promise<void> {
    await this.prefs.updateOne({ _id: accountId }, { $set: { channels, updatedAt: new Date(), ...(fhirUser ? { fhirUser } : {}) } }, { upsert: true });
  }

  /**
   * Claims a delivery for sending; false when it was already sent (by this or another process). The unique
   * `_id` settles races. A claim is released when sending fails, so a retry can send; it is marked `sent` when
   * sending succeeded. A claim whose process died mid-send (killed, say) lapses after the lease and is taken
   * over by the next attempt, so the notification is not lost; while it is live, `DeliveryInProgress` is
   * thrown so that the job retries instead of counting it as sent.
   */
  async claim(key: string): Promise<boolean> {
    try {
      await this.deliveries.insertOne({ _id: key, at: new Date(), sending: true, exp: new Date(Date.now() + this.sendingLeaseMs) });
      return true;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    const held = await this.deliveries.findOne({ _id: key });
    if (!held) return this.claim(key); // released meanwhile
    if (!held.sending) return false;
    if (held.exp && held.exp > new Date()) throw new DeliveryInProgress(key);
    const taken = await this.deliveries.updateOne({ _id: key, sending: true, exp: held.exp }, { $set: { at: new Date(), exp: new Date(Date.now() + this.sendingLeaseMs) } });
    if (taken.modifiedCount === 1) return true;
    throw new DeliveryInProgress(key);
  }

  /** Records that a claimed delivery went out. */
  async sent(key: string): Promise<void> {
    await this.deliveries.updateOne({ _id: key }, { $set: { at: new Date() }, $unset: { sending: '', exp: '' } });
  }

  async release(key: string): Promise<void> {
    await this.deliveries.deleteOne({ _id: key });
  }
}
