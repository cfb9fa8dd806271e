/**
 * Checks the audit trail's hash chains (src/audit/verify.ts): every record's hash against its content, every
 * link to the previous record, no position missing unless a void record explains it.
 *   npm run audit-verify            prints one line per broken chain (its first broken link); exit code 1 if any
 * Uses the server's configuration (MONGODB_URI, MONGODB_DB, AUDIT_HMAC_KEY). Safe while servers run.
 */
import { MongoClient } from 'mongodb';
import { loadConfig } from '../src/config/config.js';
import { verifyAuditChains } from '../src/audit/verify.js';

const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' });
if (!config.mongodbUri) {
  console.error('MONGODB_URI is not set');
  process.exit(2);
}
const client = await MongoClient.connect(config.mongodbUri);
try {
  const report = await verifyAuditChains(client.db(config.mongodbDb), config.audit.hmacKey);
  for (const b of report.broken) console.log(`BROKEN chain ${b.chain} at position ${b.seq}: ${b.reason}`);
  console.log(`${report.records} audit records in ${report.chains} chains checked: ${report.broken.length ? `${report.broken.length} broken` : 'all intact'}`);
  process.exitCode = report.broken.length ? 1 : 0;
} finally {
  await client.close();
}
