import type { AccountKind } from './access-policy.js';

/** What the authorization server needs to know of an account (the accounts module provides it). */
export interface AccountInfo {
  id: string;
  kind: AccountKind;
  /** `Patient/…` or `Practitioner/…`; absent for administrators without a FHIR record. */
  fhirUser?: string;
  organization?: string;
  name?: string;
}

export interface AccountDirectory {
  findById(id: string): Promise<AccountInfo | undefined>;
  /** Checks a password (rate-limited per account and per IP); throws an OperationOutcomeError (401/429). */
  authenticate(email: string, password: string, ip: string): Promise<AccountInfo>;
}
