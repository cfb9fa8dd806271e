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
}

const isDuplicateKey = (err: unknown) => (err as { code?: number }).code === 11000;

/**
 * Per-account channel preferences (a small collection beside `accounts`, which the accounts module owns)
 * and the delivery ledger that keeps a notification from going out twice.
 */
export class NotificationStore {
  private readonly prefs: Collection<PreferenceDoc>;
  private readonly deliveries: Collection<DeliveryDoc>;

  constructor(db: Db) {
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
   * Claims a delivery; false when it was already claimed (by this or another process). The unique `_id`
   * settles races. A claim is released when sending fails, so a retry can send.
   */
  async claim(key: string): Promise<boolean> {
    try {
      await this.deliveries.insertOne({ _id: key, at: new Date() });
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  async release(key: string): Promise<void> {
    await this.deliveries.deleteOne({ _id: key });
  }
}
