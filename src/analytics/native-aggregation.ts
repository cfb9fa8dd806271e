import type { Document } from 'mongodb';

/**
 * An engine that can run some aggregation pipelines over `analytics_facts` itself, without the driver (on
 * FerretDB: SQL on its PostgreSQL table, src/infra/ferretdb-aggregate.ts). It answers exactly what the
 * driver would answer for the pipelines it understands and `undefined` for any other, which the driver then
 * runs.
 */
export interface NativeAggregation {
  aggregate(pipeline: Document[]): Promise<Document[] | undefined>;
}

/**
 * The stored type of each top-level field a native engine may read: a string, a number, a boolean or an
 * array of strings; every one may also be missing or null. Fields not listed are not translated.
 */
export type FieldKind = 'string' | 'number' | 'boolean' | 'string[]';
export type FieldKinds = Readonly<Record<string, FieldKind>>;
