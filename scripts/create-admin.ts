/**
 * Creates the first system administrator, straight in the database the server uses (MONGODB_URI, MONGODB_DB).
 *   ADMIN_PASSWORD='…' npm run create-admin -- --email admin@example.org
 *   npm run create-admin -- --email admin@example.org          (prompts for the password)
 * There is no default password: the guide's seeded admin123 is exactly what attackers try first.
 * Once one exists, further administrators need --allow-additional (or the admin API).
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../src/config/config.js';
import { createLogger } from '../src/infra/logger.js';
import { initMongo } from '../src/infra/mongo.js';
import { initRedis } from '../src/infra/redis.js';
import { initMailer } from '../src/infra/mailer.js';
import { isOperationOutcomeError } from '../src/fhir/outcomes.js';
import type { FhirRepository } from '../src/fhir/storage/repository.js';
import { AccountStore } from '../src/accounts/account-store.js';
import { AccountService } from '../src/accounts/account-service.js';
import { passwordProblems } from '../src/accounts/passwords.js';

function fail(message: string, code = 1): never {
  console.error(message);
  process.exit(code);
}

/** Reads the password: hidden prompt on a terminal, else the first line of standard input (for automation). */
async function readPassword(): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
  if (process.stdin.isTTY) {
    process.stdout.write('Password for the new administrator: ');
    // Echo nothing while typing; readline writes through _writeToOutput.
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => undefined;
  }
  const line = await new Promise<string>((resolve) => {
    rl.once('line', resolve);
    rl.once('close', () => resolve(''));
  });
  rl.close();
  if (process.stdin.isTTY) process.stdout.write('\n');
  return line;
}

const { values } = parseArgs({ options: { email: { type: 'string' }, 'allow-additional': { type: 'boolean', default: false } } });
if (!values.email) fail('usage: create-admin --email <address> [--allow-additional]\n  password: ADMIN_PASSWORD or standard input', 2);
let config;
try {
  config = loadConfig();
} catch (err) {
  fail(err instanceof ConfigError ? err.message : String(err), 2);
}
if (!config.mongodbUri) fail('MONGODB_URI must be set: without it the server uses a throw-away embedded database', 2);

// A one-off secret of this command, not server configuration, hence read here rather than in config.ts.
const password = process.env.ADMIN_PASSWORD || (await readPassword());
const email = values.email.trim().toLowerCase();
const problems = passwordProblems(password, { email });
if (problems.length) fail(`The password is refused:\n  - ${problems.join('\n  - ')}`);

// Infrastructure logs only errors: this command's own output is the message below.
const logger = createLogger(config.logLevel === 'silent' ? 'silent' : 'error');
const mongo = await initMongo({ uri: config.mongodbUri, dbName: config.mongodbDb, logger });
const kv = await initRedis({ url: config.redisUrl, logger });
const mailer = await initMailer({ url: config.smtpUrl, from: config.mailFrom, logger, logBodies: false });
let exitCode = 0;
try {
  const store = new AccountStore(mongo.db);
  await store.init();
  if (!values['allow-additional'] && (await store.countByKind('system-admin')) > 0) {
    throw new Error('A system administrator already exists; pass --allow-additional to create another');
  }
  // System administrators have no FHIR person resource, so the service never touches a repository here.
  const noRepository = new Proxy({}, { get: () => () => Promise.reject(new Error('no FHIR repository in create-admin')) }) as FhirRepository;
  const service = new AccountService({
    store, repo: noRepository, kv, mailer, logger,
    limits: { maxPerAccount: config.authMaxFailures, maxPerIp: config.authMaxFailuresPerIp, windowMs: config.authLockoutMs },
    passwordResetTtlMs: config.passwordResetTtlMs,
  });
  const account = await service.createAccount({ kind: 'system-admin', email, password });
  await service.idle();
  console.log(`created system administrator ${account.email} (account ${account._id})`);
} catch (err) {
  exitCode = 1;
  if (isOperationOutcomeError(err)) console.error((err.outcome.issue ?? []).map((i) => i.details?.text ?? i.diagnostics).join('\n'));
  else console.error(err instanceof Error ? err.message : String(err));
} finally {
  await mailer.close();
  await kv.close();
  await mongo.close();
}
process.exit(exitCode);
