/**
 * How each collection is sharded when a network outgrows one replica set (README "Beyond one database
 * server"). `test/shard-layout.test.ts` checks this table against the collections the code names and the
 * indexes a running server creates: every unique index must start with its collection's shard key (MongoDB
 * enforces uniqueness across shards only then), or the collection stays unsharded.
 */
export interface ShardRule {
  /** Collection name, or a pattern for families (`fhir_<Type>`, `oidc_<Model>`). */
  collection: string | RegExp;
  /** The shard key, or `unsharded` (the collection stays on the primary shard). */
  key: Record<string, 1 | 'hashed'> | 'unsharded';
  why: string;
}

export const SHARD_LAYOUT: ShardRule[] = [
  {
    collection: /^fhir_[A-Z][A-Za-z]+$/,
    key: { _id: 1 },
    why: 'Current versions, `_id` = `Type/id`: reads by id and conditional writes go to one shard; ids are random UUIDs, so ranged chunks spread writes. Searches use the index arrays on every shard (scatter-gather).',
  },
  {
    collection: /^fhir_[A-Z][A-Za-z]+_history$/,
    key: { _id: 1 },
    why: "History, `_id` = `Type/id/version`: the unique key that admits one writer per version is the shard key; ranged on `_id`, a resource's versions share the prefix `Type/id/` and stay together.",
  },
  { collection: 'resource_locks', key: 'unsharded', why: 'Short-lived criteria locks (conditional create/update), a few documents at a time.' },
  { collection: 'slot_claims', key: { _id: 'hashed' }, why: 'One claim per slot (`_id` = the slot): the unique key that prevents double booking is the shard key.' },
  { collection: 'booking_references', key: { _id: 'hashed' }, why: 'Booking references claimed as unique keys (`_id`).' },
  { collection: 'booking_locks', key: 'unsharded', why: 'Short-lived per-patient locks while a booking checks overlaps.' },
  // --- billing: begin ---
  { collection: 'billing_invoice_claims', key: { _id: 'hashed' }, why: 'One invoice per appointment (`_id` = the appointment), claimed as a unique key.' },
  { collection: 'billing_invoice_numbers', key: 'unsharded', why: 'Invoice numbers claimed as unique keys and read by month in order (the highest); small, one document per invoice.' },
  { collection: 'billing_invoice_counters', key: 'unsharded', why: 'One counter per month.' },
  { collection: 'billing_payment_attempts', key: 'unsharded', why: 'Payment attempts per invoice, found by invoice or PaymentIntent id.' },
  { collection: 'billing_settlements', key: { _id: 'hashed' }, why: 'The payment that settled an invoice (`_id` = the invoice), refunds reserved by compare-and-set on it.' },
  { collection: 'billing_webhook_events', key: { _id: 'hashed' }, why: 'Stripe event ids claimed once (`_id`).' },
  { collection: 'billing_mail_ledger', key: { _id: 'hashed' }, why: 'Billing e-mails sent once per key (`_id`).' },
  { collection: 'billing_once', key: { _id: 'hashed' }, why: 'Once-only billing steps (cancellation refunds) by key (`_id`).' },
  // --- billing: end ---
  { collection: 'jobs', key: 'unsharded', why: 'The job queue is polled by due time from every process; it stays small (due and scheduled jobs only).' },
  { collection: 'job_claims', key: 'unsharded', why: 'Leases on job runs, unique per run (`_id`), expired ones swept.' },
  { collection: /^oidc_[A-Za-z]+$/, key: { _id: 'hashed' }, why: 'Authorization server models (tokens, grants, sessions, clients) by their id; looked up by `_id`, `grantId` or `uid`.' },
  { collection: 'smart_launches', key: 'unsharded', why: 'Single-use EHR launch contexts, short-lived.' },
  { collection: 'smart_grant_contexts', key: 'unsharded', why: 'Launch context of each grant, small.' },
  { collection: 'server_settings', key: 'unsharded', why: 'A handful of deployment-wide settings (cookie and cursor keys).' },
  { collection: 'accounts', key: 'unsharded', why: 'Sign-in accounts; the unique e-mail index would have to be the shard key, and accounts are looked up by id too. Millions of accounts fit one shard.' },
  { collection: 'password_resets', key: 'unsharded', why: 'Single-use reset tokens, short-lived.' },
  { collection: 'notification_preferences', key: 'unsharded', why: 'One small document per user.' },
  { collection: 'notification_deliveries', key: 'unsharded', why: 'Per-notice delivery records, unique per notice (`_id`), aged out.' },
  { collection: 'reindex_jobs', key: 'unsharded', why: 'A few re-index jobs of custom SearchParameters.' },
  { collection: 'subscription_outbox', key: 'unsharded', why: 'Committed changes waiting for fan-out (`_id` = the version), removed once fanned out: small.' },
  { collection: 'subscription_events', key: { _id: 1 }, why: "A subscription's numbered events, `_id` = subscription and event number: ranged on `_id`, one subscription's events stay together for ordered delivery." },
  { collection: 'subscription_counters', key: 'unsharded', why: 'One event counter per subscription.' },
  { collection: 'subscription_states', key: 'unsharded', why: 'One delivery state per subscription.' },
  { collection: 'subscription_leases', key: 'unsharded', why: 'Short-lived delivery and fan-out leases.' },
  { collection: 'bulk_jobs', key: 'unsharded', why: 'One document per Bulk Data export/import request: few, short-lived (expired ones swept).' },
  { collection: 'bulk_tasks', key: 'unsharded', why: 'The per-type tasks of each bulk request with their checkpoints: a handful per request.' },
  { collection: 'bulk_files.files', key: 'unsharded', why: 'GridFS file entries of export output (one per NDJSON part), expired with their request.' },
  { collection: 'bulk_files.chunks', key: { files_id: 1, n: 1 }, why: "GridFS chunks: MongoDB's recommended shard key for GridFS, the unique `files_id`+`n` index is that key, so one file's chunks stay together." },
  // --- analytics: begin ---
  { collection: 'analytics_facts', key: { _id: 'hashed' }, why: 'The analytics projection, one flat document per resource (`_id` = `Type/id`): written by id, read by aggregations over partition keys on every shard.' },
  { collection: 'analytics_changes', key: 'unsharded', why: 'Change entries waiting to be applied to the projection; applied and removed within moments.' },
  { collection: 'analytics_reports', key: 'unsharded', why: 'State and progress of report jobs, a few per administrator.' },
  { collection: 'analytics_state', key: 'unsharded', why: 'One marker: the projection was built on this database.' },
  // --- analytics: end ---
  { collection: 'audit_chain_marks', key: 'unsharded', why: 'Where each audit hash chain starts after retention archived its older records: one small document per chain.' },
  { collection: '_txn_probe', key: 'unsharded', why: 'The start-up probe for transaction support.' },
];

/** The rule for a collection, or undefined when the layout does not declare it. */
export function shardRuleFor(collection: string): ShardRule | undefined {
  return SHARD_LAYOUT.find((r) => (typeof r.collection === 'string' ? r.collection === collection : r.collection.test(collection)));
}

/** Whether an index (its key, in order) may be unique under a shard key: the key must be its prefix. */
export function uniqueIndexAllowed(indexKey: Record<string, unknown>, shard: ShardRule['key']): boolean {
  if (shard === 'unsharded') return true;
  const fields = Object.keys(indexKey);
  return Object.keys(shard).every((f, i) => fields[i] === f);
}

/** mongosh commands that shard a database along this layout (for the collections that exist). */
export function shardCommands(db: string, collections: string[]): string[] {
  const out = [`sh.enableSharding(${JSON.stringify(db)})`];
  for (const name of [...collections].sort()) {
    const rule = shardRuleFor(name);
    if (!rule || rule.key === 'unsharded') continue;
    out.push(`sh.shardCollection(${JSON.stringify(`${db}.${name}`)}, ${JSON.stringify(rule.key)})`);
  }
  return out;
}
