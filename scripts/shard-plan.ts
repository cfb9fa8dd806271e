/**
 * Prints the mongosh commands that shard a Medivoy database along src/infra/shard-layout.ts, for the
 * collections that exist in it: `MONGODB_URI=… MONGODB_DB=medivoy npm run shard-plan`.
 * Collections the layout does not declare are listed as warnings (add them to the layout first).
 */
import { MongoClient } from 'mongodb';
import { shardCommands, shardRuleFor } from '../src/infra/shard-layout.js';

const uri = process.env.MONGODB_URI;
const dbName = process.env.MONGODB_DB ?? 'medivoy';
if (!uri) {
  console.error('Set MONGODB_URI (and MONGODB_DB) to the database to shard.');
  process.exit(2);
}
const client = await MongoClient.connect(uri);
try {
  const names = (await client.db(dbName).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
  for (const n of names.filter((x) => !shardRuleFor(x))) console.error(`// warning: ${n} is not in the shard layout`);
  console.log(shardCommands(dbName, names).join('\n'));
} finally {
  await client.close();
}
