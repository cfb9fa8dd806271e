/**
 * Registers a SMART client and prints its client_id (and secret, for confidential clients). This is how an
 * insurer or a lab system is onboarded (backend services), and how an app gets its id.
 *   npm run register-client -- --kind backend --scopes "system/Coverage.rs system/Patient.rs" --jwks-uri https://lab.example/jwks.json
 *   npm run register-client -- --kind backend --scopes "system/Observation.cruds" --jwks ./lab-public-jwks.json
 *   npm run register-client -- --kind public --redirect-uri https://app.example/callback --scopes "openid fhirUser launch/patient patient/*.rs"
 *   npm run register-client -- --kind confidential --redirect-uri https://ehr-app.example/cb --scopes "launch user/*.rs"
 *   npm run register-client -- --kind backend --scopes "system/Observation.rs" --jwks ./lab.json --rate-limit 100/60s:token-bucket
 *   npm run register-client -- --kind backend --scopes "system/Coverage.rs system/CoverageEligibilityResponse.rs" --jwks ./insurer.json --payor Organization/acme-health
 * Uses the server's configuration (MONGODB_URI, MONGODB_DB, …); the client is stored in the database and
 * known to every server process at once.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/config.js';
import { createLogger } from '../src/infra/logger.js';
import { startServer } from '../src/server.js';
import { isOperationOutcomeError } from '../src/fhir/outcomes.js';
import { parseRateLimitOption } from '../src/http/client-rate-limit.js';

const { values } = parseArgs({
  options: {
    kind: { type: 'string' },
    scopes: { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
    'jwks-uri': { type: 'string' },
    jwks: { type: 'string' },
    name: { type: 'string' },
    'client-id': { type: 'string' },
    'launch-uri': { type: 'string' },
    'rate-limit': { type: 'string' },
    payor: { type: 'string' },
  },
});
if (!values.kind || !values.scopes) {
  console.error('usage: npm run register-client -- --kind public|confidential|backend --scopes "…" [--redirect-uri URL]… [--jwks FILE | --jwks-uri URL] [--name NAME] [--client-id ID] [--rate-limit 600/60s[:token-bucket]] [--payor Organization/ID]');
  process.exit(2);
}
const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1', REINDEX_WORKER: 'false', LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' });
const running = await startServer(config, createLogger(config.logLevel));
let code = 0;
try {
  const client = await running.auth.registerClient({
    kind: values.kind as 'public' | 'confidential' | 'backend',
    allowed_scopes: values.scopes,
    redirect_uris: values['redirect-uri'],
    jwks_uri: values['jwks-uri'],
    jwks: values.jwks ? (JSON.parse(readFileSync(values.jwks, 'utf8')) as { keys: Record<string, unknown>[] }) : undefined,
    client_name: values.name,
    client_id: values['client-id'],
    launch_uri: values['launch-uri'],
    rate_limit: values['rate-limit'] ? parseRateLimitOption(values['rate-limit']) : undefined,
    payor_organization: values.payor,
  });
  console.log(`client_id: ${client.client_id}`);
  if (client.client_secret) console.log(`client_secret: ${client.client_secret}   (shown once: store it now)`);
  console.log(`allowed scopes: ${client.allowed_scopes}`);
  if (client.payor_organization) console.log(`acts for the insurer: ${client.payor_organization} (its Coverage and CoverageEligibilityResponse only)`);
  if (client.rate_limit) console.log(`rate limit: ${JSON.stringify(client.rate_limit)}`);
} catch (err) {
  console.error(isOperationOutcomeError(err) ? err.message : err);
  code = 1;
} finally {
  await running.close();
}
process.exit(code);
