import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { issue } from '../fhir/outcomes.js';
import { passwordProblems } from './passwords.js';

/** What registration and account creation accept about a person (untrusted JSON: every field is checked). */
export interface PersonInput {
  email: string;
  password: string;
  givenName: string;
  familyName: string;
  phone?: string;
  birthDate?: string;
}

/** Cleaned input: trimmed, e-mail lower-cased, optional fields absent rather than empty. */
export type Person = PersonInput;

// Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is proven by the welcome e-mail.
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
// Letters of any script (the guide's [a-zA-Z] would refuse "José" or "Øster"), spaces, hyphens, apostrophes, dots.
const NAME = /^[\p{L}\p{M}][\p{L}\p{M} .'’-]*$/u;
const PHONE = /^\+?[0-9][0-9 ()-]{5,19}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

const fieldIssue = (field: string, text: string) => issue('error', 'invalid', text, [field]);

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

export function checkEmail(value: unknown, issues: OperationOutcomeIssue[]): string {
  const email = text(value)?.toLowerCase();
  if (!email) issues.push(fieldIssue('email', 'E-mail address is required'));
  else if (email.length > 254 || !EMAIL.test(email)) issues.push(fieldIssue('email', 'E-mail address is not valid'));
  return email ?? '';
}

function checkName(field: string, label: string, value: unknown, issues: OperationOutcomeIssue[]): string {
  const name = text(value);
  if (!name) issues.push(fieldIssue(field, `${label} is required`));
  else if (name.length > 100) issues.push(fieldIssue(field, `${label} must be at most 100 characters`));
  else if (!NAME.test(name)) issues.push(fieldIssue(field, `${label} may contain only letters, spaces, hyphens, apostrophes and dots`));
  return name ?? '';
}

/**
 * Checks every field and reports all problems at once, each issue's `expression` naming its field, so that a
 * form can show them beside the inputs.
 */
export function checkPerson(input: Partial<Record<keyof PersonInput, unknown>>): { person: Person; issues: OperationOutcomeIssue[] } {
  const issues: OperationOutcomeIssue[] = [];
  const email = checkEmail(input.email, issues);
  const givenName = checkName('givenName', 'Given name', input.givenName, issues);
  const familyName = checkName('familyName', 'Family name', input.familyName, issues);
  const person: Person = { email, password: typeof input.password === 'string' ? input.password : '', givenName, familyName };

  if (input.phone !== undefined && input.phone !== null && input.phone !== '') {
    const phone = text(input.phone);
    if (!phone || !PHONE.test(phone)) issues.push(fieldIssue('phone', 'Phone number must be 6-20 digits, optionally with +, spaces, hyphens or parentheses'));
    else person.phone = phone;
  }
  if (input.birthDate !== undefined && input.birthDate !== null && input.birthDate !== '') {
    const birthDate = text(input.birthDate);
    const parsed = birthDate && DATE.test(birthDate) ? new Date(`${birthDate}T00:00:00Z`) : undefined;
    // Round-tripping catches dates such as 2023-02-30 that Date would silently roll over.
    if (!parsed || Number.isNaN(parsed.getTime()) || parsed.toISOString().slice(0, 10) !== birthDate) {
      issues.push(fieldIssue('birthDate', 'Birth date must be a date such as 1990-04-25'));
    } else if (parsed.getTime() > Date.now()) issues.push(fieldIssue('birthDate', 'Birth date must not be in the future'));
    else if (parsed.getUTCFullYear() < 1880) issues.push(fieldIssue('birthDate', 'Birth date is too far in the past'));
    else person.birthDate = birthDate;
  }
  const names = [givenName, familyName].filter(Boolean);
  for (const p of passwordProblems(input.password, { email, names })) issues.push(fieldIssue('password', p));
  return { person, issues };
}
