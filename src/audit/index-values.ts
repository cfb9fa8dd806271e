import type { TypedValue } from '@medplum/core';
import { registerValueExtractors, type ValueExtractor } from '../fhir/search/indexer.js';

type Obj = Record<string, any>;
const list = (v: unknown): any[] => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
// FHIRPath selects no empty strings.
const typed = (type: string, values: unknown[]): TypedValue[] => values.filter((v) => v !== undefined && v !== null && v !== '').map((value) => ({ type, value }));
const agents = (r: Obj): Obj[] => list(r.agent);
const entities = (r: Obj): Obj[] => list(r.entity);
const isPatient = (ref: unknown) => ref && typeof ref === 'object' && typeof (ref as Obj).reference === 'string' && (ref as Obj).reference.split('/')[0] === 'Patient';

/**
 * The R4 AuditEvent search parameters as plain code (the same values their FHIRPath selects): the audit trail
 * writes a record per request, and evaluating two dozen expressions was most of the cost of writing one.
 * test/audit-trail.test.ts checks that both index every kind of record the same.
 */
const AUDIT_EVENT: Record<string, ValueExtractor> = {
  _profile: (r: Obj) => typed('canonical', list(r.meta?.profile)),
  _security: (r: Obj) => typed('Coding', list(r.meta?.security)),
  _source: (r: Obj) => typed('uri', list(r.meta?.source)),
  _tag: (r: Obj) => typed('Coding', list(r.meta?.tag)),
  action: (r: Obj) => typed('code', list(r.action)),
  address: (r: Obj) => typed('string', agents(r).map((a) => a.network?.address)),
  agent: (r: Obj) => typed('Reference', agents(r).map((a) => a.who)),
  'agent-name': (r: Obj) => typed('string', agents(r).map((a) => a.name)),
  'agent-role': (r: Obj) => typed('CodeableConcept', agents(r).flatMap((a) => list(a.role))),
  altid: (r: Obj) => typed('string', agents(r).map((a) => a.altId)),
  date: (r: Obj) => typed('instant', list(r.recorded)),
  entity: (r: Obj) => typed('Reference', entities(r).map((e) => e.what)),
  'entity-name': (r: Obj) => typed('string', entities(r).map((e) => e.name)),
  'entity-role': (r: Obj) => typed('Coding', entities(r).map((e) => e.role)),
  'entity-type': (r: Obj) => typed('Coding', entities(r).map((e) => e.type)),
  outcome: (r: Obj) => typed('code', list(r.outcome)),
  patient: (r: Obj) => typed('Reference', [...agents(r).map((a) => a.who), ...entities(r).map((e) => e.what)].filter(isPatient)),
  policy: (r: Obj) => typed('uri', agents(r).flatMap((a) => list(a.policy))),
  site: (r: Obj) => typed('string', list(r.source?.site)),
  source: (r: Obj) => typed('Reference', list(r.source?.observer)),
  subtype: (r: Obj) => typed('Coding', list(r.subtype)),
  type: (r: Obj) => typed('Coding', list(r.type)),
};

registerValueExtractors('AuditEvent', AUDIT_EVENT);
