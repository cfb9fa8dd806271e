import { hash, verify, type Algorithm } from '@node-rs/argon2';

/**
 * Password policy of the product guide (Security Best Practices → Password Security): at least 8 characters
 * with lower case, upper case, digit and special character, and no common patterns. We add what the guide's
 * regexes miss: the user's own e-mail name or real name, runs of one character, keyboard/alphabet sequences,
 * and an upper bound so that hashing cannot be abused for denial of service.
 */
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 128;

/** Words that make a password guessable wherever they appear (compared case-insensitively, digits→letters). */
const COMMON_WORDS = [
  'password', 'passwort', 'qwerty', 'azerty', 'letmein', 'welcome', 'admin', 'iloveyou', 'monkey', 'dragon',
  'football', 'baseball', 'sunshine', 'princess', 'master', 'shadow', 'superman', 'trustno1', 'secret',
  'changeme', 'medivoy', 'hospital', 'doctor', 'patient', 'login',
];
/** Sequences of which any 4 consecutive characters in the password are refused (forwards or backwards). */
const SEQUENCES = ['abcdefghijklmnopqrstuvwxyz', '01234567890', 'qwertyuiop', 'asdfghjkl', 'zxcvbnm', 'qwertzuiop', 'azertyuiop'];

/** Undoes common leetspeak so that 'P@ssw0rd' is recognised as 'password'. */
function deLeet(s: string): string {
  return s.replace(/[@4]/g, 'a').replace(/3/g, 'e').replace(/[1!|]/g, 'i').replace(/0/g, 'o').replace(/[$5]/g, 's').replace(/7/g, 't');
}

function hasSequence(lower: string): boolean {
  for (const seq of SEQUENCES) {
    for (const s of [seq, [...seq].reverse().join('')]) {
      for (let i = 0; i + 4 <= s.length; i++) if (lower.includes(s.slice(i, i + 4))) return true;
    }
  }
  return false;
}

/**
 * Checks a password against the policy; returns every problem (empty: acceptable). `personal` holds values
 * the password must not contain: the e-mail address (its local part is checked) and the person's names.
 */
export function passwordProblems(password: unknown, personal: { email?: string; names?: string[] } = {}): string[] {
  if (typeof password !== 'string' || password === '') return ['Password is required'];
  const problems: string[] = [];
  const length = [...password].length;
  if (length < PASSWORD_MIN_LENGTH) problems.push(`Password must be at least ${PASSWORD_MIN_LENGTH} characters long`);
  if (length > PASSWORD_MAX_LENGTH) problems.push(`Password must be at most ${PASSWORD_MAX_LENGTH} characters long`);
  if (!/\p{Ll}/u.test(password)) problems.push('Password must contain at least one lower-case letter');
  if (!/\p{Lu}/u.test(password)) problems.push('Password must contain at least one upper-case letter');
  if (!/\p{Nd}/u.test(password)) problems.push('Password must contain at least one digit');
  if (!/[^\p{L}\p{Nd}]/u.test(password)) problems.push('Password must contain at least one special character (such as ! ? # or a space)');

  const lower = password.toLowerCase();
  const plain = deLeet(lower);
  if (COMMON_WORDS.some((w) => lower.includes(w) || plain.includes(w))) problems.push('Password contains a common word such as "password" or "welcome"');
  if (/(.)\1\1/u.test(lower)) problems.push('Password must not repeat the same character three times in a row');
  if (hasSequence(lower)) problems.push('Password must not contain sequences such as "1234", "abcd" or "qwer"');

  const localPart = personal.email?.split('@')[0]?.toLowerCase();
  const personalParts = [localPart, ...(localPart?.split(/[._+-]+/) ?? []), ...(personal.names ?? []).map((n) => n.toLowerCase())]
    .filter((p): p is string => !!p && p.length >= 3);
  if (personalParts.some((p) => lower.includes(p) || plain.includes(p))) problems.push('Password must not contain your name or e-mail address');
  return problems;
}

/**
 * Hashing: Argon2id (RFC 9106) through @node-rs/argon2, a prebuilt native binding that installs from npm without a
 * compiler. We prefer it to bcrypt cost 12 because it is memory-hard (GPU cracking costs far more), has no 72-byte
 * input limit, and runs off the event loop in ~30 ms instead of pure-JS bcrypt's ~250 ms blocking the process.
 * Parameters are OWASP's minimum for Argon2id (19 MiB, 2 passes, 1 lane); the PHC string records them, so raising
 * them later still verifies old hashes.
 */
const ARGON2ID = 2 as Algorithm;
const HASH_OPTIONS = { algorithm: ARGON2ID, memoryCost: 19456, timeCost: 2, parallelism: 1 };

export function hashPassword(password: string): Promise<string> {
  return hash(password, HASH_OPTIONS);
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false; // a malformed stored hash is a failed login, not a 500
  }
}

/**
 * A hash of a random password, verified when the account does not exist so that an unknown e-mail takes as
 * long as a wrong password (no account enumeration by timing).
 */
let dummyHash: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
  dummyHash ??= hashPassword(`dummy-${Math.random()}-${Date.now()}`);
  return dummyHash;
}
