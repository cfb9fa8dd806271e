import { randomBytes } from 'node:crypto';
import type { Collection, Db } from 'mongodb';

/** An EHR launch: the context the EHR opened the app with, single-use and short-lived. */
export interface LaunchDoc {
  _id: string;
  patient?: string;
  encounter?: string;
  createdBy: string;
  clientId?: string;
  expiresAt: Date;
  usedAt?: Date;
}

/** The launch context a grant was given: returned in the token response and kept in the token. */
export interface GrantContext {
  patient?: string;
  encounter?: string;
  need_patient_banner?: boolean;
  smart_style_url?: string;
  fhirUser?: string;
}

/**
 * Launch ids issued to EHR launches, and the context chosen for each grant. Kept in our own collections,
 * keyed by grant id, because oidc-provider filters custom data out of its models (P-6).
 */
export class LaunchContexts {
  private readonly launches: Collection<LaunchDoc>;
  private readonly grants: Collection<GrantContext & { _id: string; expiresAt: Date }>;

  constructor(db: Db, private readonly ttlMs = 5 * 60_000) {
    this.launches = db.collection<LaunchDoc>('smart_launches');
    this.grants = db.collection('smart_grant_contexts');
  }

  async create(ctx: { patient?: string; encounter?: string; createdBy: string; clientId?: string }): Promise<string> {
    const id = randomBytes(18).toString('base64url');
    await this.launches.insertOne({ _id: id, ...ctx, expiresAt: new Date(Date.now() + this.ttlMs) });
    return id;
  }

  async find(id: string): Promise<LaunchDoc | undefined> {
    const doc = await this.launches.findOne({ _id: id });
    return doc && !doc.usedAt && doc.expiresAt.getTime() > Date.now() ? doc : undefined;
  }

  /** Marks a launch used; false if another authorization used it first. */
  async use(id: string): Promise<LaunchDoc | undefined> {
    const res = await this.launches.findOneAndUpdate({ _id: id, usedAt: { $exists: false } }, { $set: { usedAt: new Date() } }, { returnDocument: 'after' });
    return res && res.expiresAt.getTime() > Date.now() ? res : undefined;
  }

  async setContext(grantId: string, context: GrantContext, ttlMs: number): Promise<void> {
    await this.grants.replaceOne({ _id: grantId }, { ...context, expiresAt: new Date(Date.now() + ttlMs) }, { upsert: true });
  }

  async contextOf(grantId: string): Promise<GrantContext | undefined> {
    const doc = await this.grants.findOne({ _id: grantId });
    if (!doc) return undefined;
    const { _id, expiresAt: _e, ...context } = doc;
    return context;
  }
}
