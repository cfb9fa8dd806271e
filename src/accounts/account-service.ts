import { randomUUID } from 'node:crypto';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { errors, issue, outcome, OperationOutcomeError } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import type { KeyValueStore } from '../infra/redis.js';
import type { Logger } from '../infra/logger.js';
import type { Mailer } from '../infra/mailer.js';
import { welcomeEmail, type RenderedEmail } from '../notifications/templates.js';
import { ACCOUNT_KINDS, type Account, type AccountKind, type AccountStore } from './account-store.js';
import { LoginThrottle, type ThrottleLimits } from './login-throttle.js';
import { dummyPasswordHash, hashPassword, passwordProblems, verifyPassword } from './passwords.js';
import { PasswordFlows } from './password-flows.js';
import { patientResource, personNames, practitionerResource } from './person-resources.js';
import { checkEmail, checkPerson, type PersonInput } from './validate-person.js';

export interface AccountServiceDeps {
  store: AccountStore;
  /** Where Patient and Practitioner resources of new accounts are written. */
  repo: FhirRepository;
  kv: KeyValueStore;
  mailer: Mailer;
  logger: Logger;
  limits: ThrottleLimits;
  passwordResetTtlMs: number;
  passwordResetUrl?: string;
}

/** Administrator-created accounts: a new person (`person`) or an existing resource (`fhirUser`). */
export interface CreateAccountInput {
  kind: AccountKind;
  email: string;
  password: string;
  fhirUser?: string;
  person?: Omit<PersonInput, 'email' | 'password'>;
  organization?: string;
}

/** 401 without saying whether the address or the password was wrong (no account enumeration). */
export const invalidCredentials = () =>
  new OperationOutcomeError(401, outcome([issue('error', 'login', 'Invalid e-mail address or password')]));

/** Pause before each retry of a failed e-mail (no job queue yet: in-process, lost on restart). */
const MAIL_RETRY_MS = [1000, 4000];

/**
 * Accounts and their FHIR person resources. Knows no HTTP: routes.ts adapts it, and the SMART
 * authorization server calls `authenticate` and `findById` directly.
 */
export class AccountService {
  readonly throttle: LoginThrottle;
  readonly passwords: PasswordFlows;
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly deps: AccountServiceDeps) {
    this.throttle = new LoginThrottle(deps.kv, deps.limits);
    this.passwords = new PasswordFlows(this, deps);
  }

  /** Self-registration of a patient: the Patient resource and the account, both or neither. */
  async registerPatient(input: Partial<Record<keyof PersonInput, unknown>>): Promise<Account> {
    const { person, issues } = checkPerson(input);
    if (issues.length) throw errors.invalid(issues);
    const account = await this.createLinked({ kind: 'patient', email: person.email, password: person.password }, patientResource(person));
    this.notify(account.email, welcomeEmail({ name: person.givenName, email: account.email }));
    return account;
  }

  /** For administrators (and scripts/create-admin.ts): any kind, with the checks that kind needs. */
  async createAccount(input: CreateAccountInput): Promise<Account> {
    const issues: OperationOutcomeIssue[] = [];
    const bad = (field: string, text: string) => issues.push(issue('error', 'invalid', text, [field]));
    if (!ACCOUNT_KINDS.includes(input.kind)) bad('kind', `Kind must be one of ${ACCOUNT_KINDS.join(', ')}`);
    let resource: Resource | undefined;
    let email: string;
    let name: string | undefined;
    if (input.person) {
      const checked = checkPerson({ ...input.person, email: input.email, password: input.password });
      issues.push(...checked.issues);
      email = checked.person.email;
      name = checked.person.givenName;
      if (input.kind === 'patient') resource = patientResource(checked.person);
      else if (input.kind === 'practitioner') resource = practitionerResource(checked.person);
      else bad('person', 'Only patient and practitioner accounts create a person resource');
    } else {
      email = checkEmail(input.email, issues);
      for (const p of passwordProblems(input.password, { email })) bad('password', p);
    }
    const wantType = { patient: 'Patient', practitioner: 'Practitioner', 'hospital-admin': 'Practitioner', 'system-admin': undefined }[input.kind];
    if (input.fhirUser !== undefined) {
      if (resource) bad('fhirUser', 'Give either fhirUser or person, not both');
      else if (!wantType || typeof input.fhirUser !== 'string' || !input.fhirUser.startsWith(`${wantType}/`)) bad('fhirUser', `A ${input.kind} account cannot link to ${input.fhirUser}`);
      else if (!(await this.exists(input.fhirUser))) bad('fhirUser', `${input.fhirUser} does not exist`);
    } else if ((input.kind === 'patient' || input.kind === 'practitioner') && !resource) {
      bad('person', `A ${input.kind} account needs person data or an existing fhirUser`);
    }
    if (input.kind === 'hospital-admin') {
      if (typeof input.organization !== 'string' || !input.organization.startsWith('Organization/')) bad('organization', 'A hospital administrator needs organization: Organization/<id>');
      else if (!(await this.exists(input.organization))) bad('organization', `${input.organization} does not exist`);
    } else if (input.organization !== undefined) bad('organization', 'Only hospital administrators belong to an organization');
    if (issues.length) throw errors.invalid(issues);

    const base = { kind: input.kind, email, password: input.password, fhirUser: input.fhirUser, organization: input.organization };
    const account = await this.createLinked(base, resource);
    this.notify(account.email, welcomeEmail({ name, email: account.email }));
    return account;
  }

  /**
   * Writes the person resource (if any) and the account as one unit. The account is inserted last, inside the
   * FHIR transaction: its unique e-mail index is what decides a race between two registrations, and when it
   * refuses, the transaction fails and the resource is rolled back. Should the transaction fail after the insert
   * (commit error), the account is deleted again. The pre-check only spares the common duplicate a resource write.
   */
  private async createLinked(
    base: { kind: AccountKind; email: string; password: string; fhirUser?: string; organization?: string },
    resource: Resource | undefined,
  ): Promise<Account> {
    if (await this.deps.store.findByEmail(base.email)) throw errors.conflict('An account with this e-mail address already exists');
    const passwordHash = await hashPassword(base.password);
    const id = randomUUID();
    const account = (fhirUser: string | undefined): Account => ({
      _id: id, email: base.email, kind: base.kind, passwordHash, createdAt: new Date(),
      ...(fhirUser ? { fhirUser } : {}), ...(base.organization ? { organization: base.organization } : {}),
    });
    if (!resource) {
      // Nothing else to write (system administrators, links to existing resources): no transaction needed.
      const created = account(base.fhirUser);
      await this.deps.store.insert(created);
      return created;
    }
    let inserted = false;
    try {
      return await this.deps.repo.transaction(async (tx) => {
        if (inserted) await this.deps.store.delete(id); // the engine re-runs the callback after a transient error
        inserted = false;
        const { version } = await tx.create(resource);
        const created = account(`${version.resourceType}/${version.id}`);
        await this.deps.store.insert(created);
        inserted = true;
        return created;
      });
    } catch (err) {
      if (inserted) await this.deps.store.delete(id).catch((e) => this.deps.logger.error({ err: e, accountId: id }, 'could not remove the account of a failed registration'));
      throw err;
    }
  }

  /** The account for an e-mail and password, or 401; 429 with Retry-After once the account or the IP is locked. */
  async authenticate(email: unknown, password: unknown, ip: string): Promise<Account> {
    const key = typeof email === 'string' ? email.trim().toLowerCase() : '';
    if (!key || typeof password !== 'string' || password === '') throw invalidCredentials();
    await this.throttle.check(key, ip);
    const account = await this.deps.store.findByEmail(key);
    let ok = false;
    if (account && !account.disabled) ok = await verifyPassword(account.passwordHash, password);
    else await verifyPassword(await dummyPasswordHash(), password); // same time as a wrong password
    if (!ok || !account) {
      await this.throttle.failure(key, ip);
      throw invalidCredentials();
    }
    await this.throttle.success(key, ip);
    return account;
  }

  changePassword(accountId: string, currentPassword: unknown, newPassword: unknown, ip: string): Promise<void> {
    return this.passwords.change(accountId, currentPassword, newPassword, ip);
  }

  requestPasswordReset(email: unknown): Promise<void> {
    return this.passwords.requestReset(email);
  }

  resetPassword(token: unknown, newPassword: unknown): Promise<void> {
    return this.passwords.reset(token, newPassword);
  }

  async findById(id: string): Promise<Account | undefined> {
    return (await this.deps.store.findById(id)) ?? undefined;
  }

  async findByEmail(email: string): Promise<Account | undefined> {
    return (await this.deps.store.findByEmail(email.trim())) ?? undefined;
  }

  /** The person resource of an account, when it has one that can be read. */
  async person(account: Account): Promise<{ given?: string; family?: string }> {
    if (!account.fhirUser) return {};
    const [type, id] = account.fhirUser.split('/');
    try {
      return personNames(parseResource(await this.deps.repo.read(type!, id!)));
    } catch {
      return {};
    }
  }

  /**
   * Sends after the write has committed and never fails the request: a mail outage must not undo a registration.
   * Retried in-process; `idle()` waits for what is still queued (server shutdown, tests).
   */
  notify(to: string, mail: RenderedEmail): void {
    const attempt = async () => {
      for (let i = 0; ; i++) {
        try {
          return await this.deps.mailer.send({ to, ...mail });
        } catch (err) {
          if (i >= MAIL_RETRY_MS.length) return this.deps.logger.error({ err, subject: mail.subject }, 'e-mail could not be sent');
          await new Promise((r) => setTimeout(r, MAIL_RETRY_MS[i]));
        }
      }
    };
    const p = attempt().finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  async idle(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  private async exists(reference: string): Promise<boolean> {
    const [type, id] = reference.split('/');
    if (!type || !id) return false;
    return this.deps.repo.read(type, id).then(() => true, () => false);
  }
}
