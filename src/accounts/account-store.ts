import type { Collection, Db } from 'mongodb';
import { errors } from '../fhir/outcomes.js';

export const ACCOUNT_KINDS = ['patient', 'practitioner', 'hospital-admin', 'system-admin'] as const;
export type AccountKind = (typeof ACCOUNT_KINDS)[number];

/** A login. The person behind it is a FHIR resource (`fhirUser`); the account holds only what login needs. */
export interface Account {
  _id: string;
  /** Lower-cased; unique (the index is what settles concurrent registrations). */
  email: string;
  kind: AccountKind;
  /** SMART `fhirUser`: `Patient/…` or `Practitioner/…`. */
  fhirUser?: string;
  /** Hospital administrators: the `Organization/…` they administer. */
  organization?: string;
  passwordHash: string;
  createdAt: Date;
  passwordChangedAt?: Date;
  disabled?: boolean;
}

/** A password-reset request; the token itself is only in the e-mail, the store keeps its SHA-256. */
export interface PasswordReset {
  /** SHA-256 (hex) of the token. */
  _id: string;
  accountId: string;
  createdAt: Date;
  expiresAt: Date;
  usedAt?: Date;
}

/** MongoDB error code of a unique-index violation. */
const DUPLICATE_KEY = 11000;

/** Collections `accounts` and `password_resets`, kept apart from the FHIR resources. */
export class AccountStore {
  private readonly accounts: Collection<Account>;
  private readonly resets: Collection<PasswordReset>;

  constructor(db: Db) {
    this.accounts = db.collection<Account>('accounts');
    this.resets = db.collection<PasswordReset>('password_resets');
  }

  /** Creates the indexes. No TTL index on resets: FerretDB has none, so expiry is checked on use and old ones purged. */
  async init(): Promise<void> {
    await this.accounts.createIndex({ email: 1 }, { unique: true, name: 'email_unique' });
    await this.resets.createIndex({ accountId: 1 }, { name: 'account' });
  }

  /** Inserts an account; a taken e-mail address (even by a concurrent insert) is a 409. */
  async insert(account: Account): Promise<void> {
    try {
      await this.accounts.insertOne(account);
    } catch (err) {
      if ((err as { code?: number }).code === DUPLICATE_KEY) throw errors.conflict('An account with this e-mail address already exists');
      throw err;
    }
  }

  async delete(id: string): Promise<void> {
    await this.accounts.deleteOne({ _id: id });
  }

  findById(id: string): Promise<Account | null> {
    return this.accounts.findOne({ _id: id });
  }

  findByEmail(email: string): Promise<Account | null> {
    return this.accounts.findOne({ email: email.toLowerCase() });
  }

  async countByKind(kind: AccountKind): Promise<number> {
    return this.accounts.countDocuments({ kind });
  }

  async setPasswordHash(id: string, passwordHash: string, at: Date): Promise<void> {
    await this.accounts.updateOne({ _id: id }, { $set: { passwordHash, passwordChangedAt: at } });
  }

  async insertReset(reset: PasswordReset): Promise<void> {
    await this.resets.insertOne(reset);
    await this.resets.deleteMany({ expiresAt: { $lt: new Date(Date.now() - 86_400_000) } }); // housekeeping
  }

  /** A reset that is unused and not expired at `now`, without consuming it. */
  findUsableReset(tokenHash: string, now: Date): Promise<PasswordReset | null> {
    return this.resets.findOne({ _id: tokenHash, usedAt: { $exists: false }, expiresAt: { $gt: now } });
  }

  /** Marks a reset used, atomically: of two concurrent uses of one token exactly one gets true. */
  async consumeReset(tokenHash: string, now: Date): Promise<boolean> {
    const res = await this.resets.updateOne({ _id: tokenHash, usedAt: { $exists: false }, expiresAt: { $gt: now } }, { $set: { usedAt: now } });
    return res.modifiedCount === 1;
  }

  /** Retires every outstanding reset of an account (after a password change, older e-mails must stop working). */
  async retireResets(accountId: string, now: Date): Promise<void> {
    await this.resets.updateMany({ accountId, usedAt: { $exists: false } }, { $set: { usedAt: now } });
  }
}
