import { randomUUID } from 'node:crypto';
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding } from '@medplum/fhirtypes';

/** Who acted: the signed-in user (if any) and the client application, as the access token or sign-in says. */
export interface Actor {
  clientId?: string;
  accountId?: string;
  /** `Patient/…`, `Practitioner/…` */
  fhirUser?: string;
  role?: string;
  ip?: string;
  /** What the user typed to sign in, when no account matched (never a password). */
  attemptedUser?: string;
}

export type Action = 'C' | 'R' | 'U' | 'D' | 'E';
/** R4 AuditEvent.outcome: success, minor failure (refused), serious failure (server error). */
export type Outcome = '0' | '4' | '8' | '12';

export interface EventSpec {
  type: Coding;
  subtype: Coding;
  action: Action;
  outcome: Outcome;
  outcomeDesc?: string;
  actor: Actor;
  /** Resources touched, `Type/id` or `Type/id/_history/v`. */
  resources?: string[];
  /** Most resources listed (default MAX_RESOURCE_ENTITIES); the rest are counted in outcomeDesc. */
  maxResources?: number;
  /** Patients whose data was touched (ids). */
  patients?: string[];
  /** The search query (kept as text; stored base64 as R4 wants). */
  query?: string;
  requestId?: string;
  /** Several requests in one record (aggregated reads, see read-aggregator.ts). */
  requestIds?: string[];
  /** When the recorded activity happened, for a record of several requests. */
  period?: { start: Date; end: Date };
  /** Time of the event (default now). */
  recorded?: Date;
}

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
export const AUDIT_SUBTYPE_SYSTEM = 'http://medivoy.example/fhir/CodeSystem/audit-subtype';
export const codes = {
  rest: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
  userAuthentication: { system: DCM, code: '110114', display: 'User Authentication' },
  login: { system: DCM, code: '110122', display: 'Login' },
  interaction: (code: string): Coding => ({ system: 'http://hl7.org/fhir/restful-interaction', code }),
  /** Token events have no BALP code: our own subtypes under User Authentication. */
  token: (code: 'token-issued' | 'token-refused' | 'token-revoked' | 'authorization-refused'): Coding => ({ system: AUDIT_SUBTYPE_SYSTEM, code }),
  operation: (name: string): Coding => ({ system: AUDIT_SUBTYPE_SYSTEM, code: `$${name}` }),
} satisfies Record<string, Coding | ((c: never) => Coding)>;

/** Most resources named in one record (the patients are all named); a bigger answer says it was cut. */
export const MAX_RESOURCE_ENTITIES = 50;

// Codes without their displays: a record is written per request, and every byte is stored and indexed.
const entityType = (code: '1' | '2', _display: string) => ({ system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code });
const role = (code: string, _display: string) => ({ system: 'http://terminology.hl7.org/CodeSystem/object-role', code });

function agents(a: Actor): AuditEventAgent[] {
  const out: AuditEventAgent[] = [];
  const user = a.fhirUser || a.accountId || a.attemptedUser;
  const network = a.ip ? { address: a.ip, type: '2' as const } : undefined;
  if (user) {
    out.push({
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] },
      who: a.fhirUser ? { reference: a.fhirUser } : a.accountId ? { identifier: { system: 'urn:medivoy:account', value: a.accountId } } : { display: a.attemptedUser },
      ...(a.accountId ? { altId: a.accountId } : {}),
      ...(a.role ? { role: [{ text: a.role }] } : {}),
      requestor: true,
      ...(network ? { network } : {}),
    });
  }
  if (a.clientId) {
    out.push({
      type: { coding: [{ system: DCM, code: '110150' }] },
      who: { identifier: { system: 'urn:medivoy:client-id', value: a.clientId }, display: a.clientId },
      name: a.clientId,
      requestor: !user,
      ...(network && !user ? { network } : {}),
    });
  }
  if (!out.length) out.push({ type: { coding: [{ system: DCM, code: '110153' }] }, who: { display: 'anonymous' }, requestor: true, ...(network ? { network } : {}) });
  return out;
}

/** An R4 AuditEvent (IHE BALP style): type/subtype, agents, this server as source, entities, outcome. */
export function auditEvent(spec: EventSpec, source: { site: string; observer: string }): AuditEvent {
  const entity: AuditEventEntity[] = [];
  const named = new Set(spec.patients ?? []);
  for (const p of named) entity.push({ what: { reference: `Patient/${p}` }, type: entityType('1', 'Person'), role: role('1', 'Patient') });
  // A Patient read (not a version of it) is already named as the patient.
  const resources = [...new Set(spec.resources ?? [])].filter((r) => !(r.startsWith('Patient/') && !r.includes('/_history/') && named.has(r.slice(8).split('/')[0]!)));
  const cap = spec.maxResources ?? MAX_RESOURCE_ENTITIES;
  for (const r of resources.slice(0, cap)) entity.push({ what: { reference: r }, type: entityType('2', 'System Object'), role: role('4', 'Domain Resource') });
  if (spec.query !== undefined) entity.push({ type: entityType('2', 'System Object'), role: role('24', 'Query'), query: Buffer.from(spec.query, 'utf8').toString('base64') });
  const xRequestId = { system: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType', code: 'XrequestId' };
  if (spec.requestId) entity.push({ what: { identifier: { value: spec.requestId } }, type: xRequestId });
  // Several requests (aggregated reads): their ids in one entity's detail, not one indexed entity each.
  if (spec.requestIds?.length) entity.push({ type: xRequestId, detail: [{ type: 'request-ids', valueString: spec.requestIds.join(' ') }] });
  const cut = resources.length > cap ? `; ${resources.length - cap} more resources not listed` : '';
  return {
    resourceType: 'AuditEvent',
    id: randomUUID(),
    type: spec.type,
    subtype: [spec.subtype],
    action: spec.action,
    ...(spec.period ? { period: { start: spec.period.start.toISOString(), end: spec.period.end.toISOString() } } : {}),
    recorded: (spec.recorded ?? new Date()).toISOString(),
    outcome: spec.outcome,
    ...(spec.outcomeDesc || cut ? { outcomeDesc: `${spec.outcomeDesc ?? ''}${cut}`.replace(/^; /, '') } : {}),
    agent: agents(spec.actor),
    source: {
      ...(source.site ? { site: source.site } : {}),
      observer: { identifier: { value: source.observer } },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4' }],
    },
    ...(entity.length ? { entity } : {}),
  };
}

/** R4 outcome of an HTTP status. */
export function outcomeOf(status: number): Outcome {
  if (status < 400) return '0';
  if (status < 500) return '4';
  return '8';
}
