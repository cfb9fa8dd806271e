import { createHash, randomBytes } from 'node:crypto';
import { errors, issue } from '../fhir/outcomes.js';
import { passwordChangedEmail, passwordResetEmail } from '../notifications/templates.js';
import type { Account } from './account-store.js';
import type { AccountService, AccountServiceDeps } from './account-service.js';
import { hashPassword, passwordProblems } from './passwords.js';
import { checkEmail } from './validate-person.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const badToken = () => errors.invalid([issue('error', 'invalid', 'The reset code is invalid, has expired or was already used', ['token'])]);

/** Password change and reset (guide: "Password reset validation schema"); part of AccountService. */
export class PasswordFlows {
  constructor(
    private readonly service: AccountService,
    private readonly deps: AccountServiceDeps,
  ) {}

  /** Changes a password after checking the current one (rate-limited exactly like a login). */
  async change(accountId: string, currentPassword: unknown, newPassword: unknown, ip: string): Promise<void> {
    const account = await this.deps.store.findById(accountId);
    if (!account) throw errors.notFound('Account not found');
    await this.service.authenticate(account.email, currentPassword, ip);
    if (newPassword === currentPassword) {
      throw errors.invalid([issue('error', 'invalid', 'The new password must differ from the current one', ['newPassword'])]);
    }
    await this.setPassword(account, newPassword);
  }

  /**
   * Always succeeds from the caller's view, so the answer does not reveal which addresses have accounts.
   * The token is 256 random bits; only its SHA-256 is stored (a database leak yields no usable token), and
   * a slow hash is unnecessary for a secret with that much entropy.
   */
  async requestReset(email: unknown): Promise<void> {
    const problems: Parameters<typeof errors.invalid>[0] = [];
    const address = checkEmail(email, problems);
    if (problems.length) throw errors.invalid(problems);
    // At most as many reset e-mails per address and window as failed logins: no mail-bombing through us.
    const { value } = await this.deps.kv.incr(`auth:reset:${sha256(address).slice(0, 32)}`, this.deps.limits.windowMs);
    if (value > this.deps.limits.maxPerAccount) {
      this.deps.logger.warn('password reset requests over the limit for one address; no e-mail sent');
      return;
    }
    const account = await this.deps.store.findByEmail(address);
    if (!account || account.disabled) return;
    const token = randomBytes(32).toString('base64url');
    const now = new Date();
    await this.deps.store.insertReset({ _id: sha256(token), accountId: account._id, createdAt: now, expiresAt: new Date(now.getTime() + this.deps.passwordResetTtlMs) });
    const { given } = await this.service.person(account);
    const mail = passwordResetEmail({
      name: given,
      token,
      expiresInMinutes: Math.max(1, Math.round(this.deps.passwordResetTtlMs / 60_000)),
      resetUrl: this.deps.passwordResetUrl,
    });
    this.service.notify(account.email, mail);
  }

  /** Sets a new password with a reset token: single use (consumed atomically), expiry enforced. */
  async reset(token: unknown, newPassword: unknown): Promise<void> {
    if (typeof token !== 'string' || token.length < 16 || token.length > 128) throw badToken();
    const tokenHash = sha256(token);
    const reset = await this.deps.store.findUsableReset(tokenHash, new Date());
    const account = reset && (await this.deps.store.findById(reset.accountId));
    if (!account || account.disabled) throw badToken();
    // The policy is checked before the token is consumed, so a refused password does not burn the e-mail.
    await this.checkPolicy(account, newPassword);
    if (!(await this.deps.store.consumeReset(tokenHash, new Date()))) throw badToken();
    await this.setPassword(account, newPassword as string);
    // The owner has just proven control of the mailbox: a lockout from someone else's guessing ends here.
    await this.service.throttle.clearAccount(account.email);
  }

  private async checkPolicy(account: Account, password: unknown): Promise<void> {
    const { given, family } = await this.service.person(account);
    const names = [given, family].filter((n): n is string => !!n);
    const problems = passwordProblems(password, { email: account.email, names });
    if (problems.length) throw errors.invalid(problems.map((p) => issue('error', 'invalid', p, ['newPassword'])));
  }

  private async setPassword(account: Account, password: unknown): Promise<void> {
    await this.checkPolicy(account, password);
    const now = new Date();
    await this.deps.store.setPasswordHash(account._id, await hashPassword(password as string), now);
    // Older reset e-mails must stop working once the password has changed by any route.
    await this.deps.store.retireResets(account._id, now);
    const { given } = await this.service.person(account);
    this.service.notify(account.email, passwordChangedEmail({ name: given, at: now }));
  }
}
