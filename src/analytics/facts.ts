import type {
  Appointment, Encounter, Invoice, Organization, PaymentReconciliation, PractitionerRole, QuestionnaireResponse, Resource, Schedule, Slot,
} from '@medplum/fhirtypes';
import { isOperationOutcomeError } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import type { FieldKinds } from './native-aggregation.js';

/**
 * The analytics projection: one flat document per appointment, payment, slot, review, practitioner role,
 * organization and patient (`analytics_facts`), so that every figure is a short aggregation pipeline over one
 * collection. A fact is derived from the current version of its resource and what it references (the
 * appointment's PractitionerRole gives its organization and specialty, a payment's Invoice its organization
 * and appointment), read through the server's repository; joins are resolved when the fact is written, so a
 * PractitionerRole moved to another organization later does not move its past appointments.
 */
export const FACTS = 'analytics_facts';
export const EXT_BASE = 'https://medivoy.example/fhir/StructureDefinition';
export const INVOICE_APPOINTMENT_URL = `${EXT_BASE}/invoice-appointment`;
export const PAYMENT_METHOD_URL = `${EXT_BASE}/invoice-payment-method`;
export const MINOR_UNITS_URL = `${EXT_BASE}/amount-minor-units`;
const TIMEZONE_URL = 'http://hl7.org/fhir/StructureDefinition/timezone';
const VERIFICATION_URL = 'http://medivoy.example/fhir/StructureDefinition/verification-status';
const REVIEW_QUESTIONNAIRE = 'http://medivoy.example/fhir/Questionnaire/practitioner-review';
/** Quarter hours: every UTC offset in use is a multiple of 15 minutes, so one bucket has one local day and hour. */
export const BUCKET_MS = 15 * 60_000;

/** The resource types the projection follows (and whose changes invalidate cached figures). */
export const PROJECTED_TYPES = ['Appointment', 'Encounter', 'Invoice', 'PaymentReconciliation', 'Slot', 'QuestionnaireResponse', 'PractitionerRole', 'Organization', 'Patient'] as const;

export type FactKind = 'appt' | 'pay' | 'slot' | 'review' | 'role' | 'org' | 'patient' | 'invoice' | 'orgpatient';

/** One fact. `org` is an organization id (without `Organization/`), `ms` the instant it counts at, `qb` its quarter-hour bucket. */
export interface Fact {
  _id: string;
  kind: FactKind;
  /** Version of the resource it was derived from (a later version is never replaced by an earlier one). */
  v: number;
  org?: string;
  /** Organizations a review counts for (the reviewed practitioner's roles). */
  orgs?: string[];
  ms?: number;
  qb?: number;
  status?: string;
  patient?: string;
  practitioner?: string;
  role?: string;
  specialty?: string;
  /** Minutes from arrival to completion (a finished Encounter of the appointment). */
  consult?: number;
  /** Money in integer minor units, and its currency. */
  amount?: number;
  currency?: string;
  method?: string;
  appt?: string;
  rating?: number;
  /** Practitioner roles: active and verified; organizations: active. */
  active?: boolean;
  /** Organizations: their IANA time zone. */
  tz?: string;
  name?: string;
  /** Partition keys (see withKeys). */
  km?: string;
  kom?: string;
}

/**
 * The stored type of every field of a fact (all optional; a field written as `undefined` is stored as null),
 * for engines that read the facts without the driver (native-aggregation.ts). Keep in step with `Fact`.
 */
export const FACT_FIELDS: FieldKinds = {
  _id: 'string', kind: 'string', v: 'number', org: 'string', orgs: 'string[]', ms: 'number', qb: 'number', status: 'string',
  patient: 'string', practitioner: 'string', role: 'string', specialty: 'string', consult: 'number', amount: 'number',
  currency: 'string', method: 'string', appt: 'string', rating: 'number', active: 'boolean', tz: 'string', name: 'string',
  km: 'string', kom: 'string',
};

type Reader = <T extends Resource>(ref: string | undefined) => Promise<T | undefined>;

export function readerFor(repo: FhirRepository): Reader {
  const memo = new Map<string, Promise<Resource | undefined>>();
  return async <T extends Resource>(ref: string | undefined) => {
    if (!ref) return undefined;
    const [type, id] = ref.split('/');
    if (!type || !id) return undefined;
    let p = memo.get(ref);
    if (!p) {
      p = repo.read(type, id).then((v) => parseResource(v), (err) => {
        if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) return undefined;
        throw err;
      });
      memo.set(ref, p);
    }
    return (await p) as T | undefined;
  };
}

const idOf = (ref: string | undefined, type: string) => (ref?.startsWith(`${type}/`) ? ref.slice(type.length + 1) : undefined);
const instant = (s: string | undefined) => {
  const t = s ? Date.parse(s) : NaN;
  return Number.isFinite(t) ? t : undefined;
};
const timed = (ms: number | undefined) => (ms === undefined ? {} : { ms, qb: Math.floor(ms / BUCKET_MS) });

/** UTC month (YYYY-MM) of an instant: facts carry it in their partition keys. */
export const monthOf = (ms: number) => new Date(ms).toISOString().slice(0, 7);

/**
 * A fact with its partition keys: `km` = kind|month, `kom` = kind|org|month. FerretDB 1.24 hands only
 * equalities on top-level fields to PostgreSQL (ranges and $in are evaluated after reading every row that
 * matches them), so the pipelines match one of these per month of the period and the time range after it:
 * a period reads its months' facts, not the whole history.
 */
export function withKeys(f: Fact): Fact {
  if (f.ms === undefined) return f;
  const mo = monthOf(f.ms);
  // Holds and appointments entered in error are not counted: kept out of the keys the pipelines match
  // (FerretDB evaluates a $nin on status only after reading every row).
  const kind = f.kind === 'appt' && (f.status === 'proposed' || f.status === 'entered-in-error') ? 'appt-uncounted' : f.kind;
  return { ...f, km: `${kind}|${mo}`, ...(f.org ? { kom: `${kind}|${f.org}|${mo}` } : {}) };
}
const label = (c: { coding?: { code?: string; display?: string }[]; text?: string } | undefined) => c?.coding?.[0]?.display ?? c?.coding?.[0]?.code ?? c?.text;

/** Integer minor units of a Money (its amount-minor-units extension, else value × 100). */
export function minorUnits(m: { value?: number; extension?: { url: string; valueInteger?: number }[] } | undefined, holder?: { extension?: { url: string; valueInteger?: number }[] }): number | undefined {
  const ext = m?.extension?.find((e) => e.url === MINOR_UNITS_URL)?.valueInteger ?? holder?.extension?.find((e) => e.url === MINOR_UNITS_URL)?.valueInteger;
  if (typeof ext === 'number') return ext;
  return typeof m?.value === 'number' ? Math.round(m.value * 100) : undefined;
}

/** Organization (id) and specialty of an appointment, through its PractitionerRole or its Location. */
async function appointmentPlace(a: Appointment, read: Reader): Promise<{ org?: string; role?: string; practitioner?: string; specialty?: string }> {
  const refs = (a.participant ?? []).map((p) => p.actor?.reference).filter((r): r is string => !!r);
  const roleRef = refs.find((r) => r.startsWith('PractitionerRole/'));
  const role = await read<PractitionerRole>(roleRef);
  let org = idOf(role?.organization?.reference, 'Organization');
  if (!org) {
    const loc = await read<{ resourceType: 'Location'; managingOrganization?: { reference?: string } } & Resource>(refs.find((r) => r.startsWith('Location/')));
    org = idOf(loc?.managingOrganization?.reference, 'Organization');
  }
  const practitioner = idOf(refs.find((r) => r.startsWith('Practitioner/')), 'Practitioner') ?? idOf(role?.practitioner?.reference, 'Practitioner');
  const specialty = label(a.specialty?.[0]) ?? label(a.serviceType?.[0]) ?? label(role?.specialty?.[0]);
  return { org, role: idOf(roleRef, 'PractitionerRole'), practitioner, specialty };
}

/**
 * The facts of one resource's current state (none when it is gone or does not count), and for an Encounter
 * or Invoice the references whose facts depend on it and must be derived again.
 */
export async function factsOf(ref: string, repo: FhirRepository, read: Reader = readerFor(repo)): Promise<{ facts: Fact[]; dependents: string[] }> {
  const [type, id] = ref.split('/') as [string, string];
  let current;
  try {
    current = await repo.read(type, id);
  } catch (err) {
    if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) return { facts: [], dependents: [] };
    throw err;
  }
  const r = parseResource(current);
  const v = Number(current.versionId) || 0;
  const base = { _id: ref, v };
  switch (type) {
    case 'Appointment': {
      const a = r as Appointment;
      const place = await appointmentPlace(a, read);
      let consult: number | undefined;
      for (const ev of await repo.findByCriteria('Encounter', `appointment=Appointment/${id}`, 5)) {
        const e = parseResource(ev) as Encounter;
        const s = instant(e.period?.start);
        const en = instant(e.period?.end);
        if (e.status === 'finished' && s !== undefined && en !== undefined && en >= s) consult = (en - s) / 60_000;
      }
      const patient = idOf(a.participant?.map((p) => p.actor?.reference).find((x) => x?.startsWith('Patient/')), 'Patient');
      return { facts: [{ ...base, kind: 'appt', status: a.status, ...timed(instant(a.start)), ...place, ...(patient ? { patient } : {}), ...(consult !== undefined ? { consult } : {}) }], dependents: [] };
    }
    case 'Encounter':
      return { facts: [], dependents: ((r as Encounter).appointment ?? []).map((x) => x.reference).filter((x): x is string => !!x?.startsWith('Appointment/')) };
    case 'Invoice': {
      const inv = r as Invoice;
      const appt = inv.extension?.find((e) => e.url === INVOICE_APPOINTMENT_URL)?.valueReference?.reference;
      return {
        facts: [{ ...base, kind: 'invoice', status: inv.status, org: idOf(inv.issuer?.reference, 'Organization'), ...timed(instant(inv.date)), ...(appt ? { appt } : {}), amount: minorUnits(inv.totalGross, inv), currency: inv.totalGross?.currency }],
        dependents: [],
      };
    }
    case 'PaymentReconciliation': {
      const p = r as PaymentReconciliation & { paymentAmount?: PaymentReconciliation['paymentAmount'] & { extension?: { url: string; valueInteger?: number }[] } };
      if (p.status !== 'active' || (p.outcome && p.outcome !== 'complete')) return { facts: [], dependents: [] };
      const inv = await read<Invoice>(p.detail?.[0]?.request?.reference);
      const apptRef = inv?.extension?.find((e) => e.url === INVOICE_APPOINTMENT_URL)?.valueReference?.reference;
      const appt = await read<Appointment>(apptRef);
      const place = appt ? await appointmentPlace(appt, read) : {};
      const method = p.extension?.find((e) => e.url === PAYMENT_METHOD_URL)?.valueCode ?? inv?.extension?.find((e) => e.url === PAYMENT_METHOD_URL)?.valueCode ?? 'unknown';
      const amount = minorUnits(p.paymentAmount, p);
      if (amount === undefined) return { facts: [], dependents: [] };
      return {
        facts: [{
          ...base, kind: 'pay', ...timed(instant(p.created) ?? instant(p.paymentDate)), amount, currency: p.paymentAmount?.currency, method,
          org: idOf(inv?.issuer?.reference, 'Organization') ?? place.org, ...(place.specialty ? { specialty: place.specialty } : {}), ...(apptRef ? { appt: apptRef } : {}),
        }],
        dependents: [],
      };
    }
    case 'Slot': {
      const s = r as Slot;
      const schedule = await read<Schedule>(s.schedule?.reference);
      const roleRef = schedule?.actor?.map((x) => x.reference).find((x) => x?.startsWith('PractitionerRole/'));
      const role = await read<PractitionerRole>(roleRef);
      return { facts: [{ ...base, kind: 'slot', status: s.status, ...timed(instant(s.start)), role: idOf(roleRef, 'PractitionerRole'), org: idOf(role?.organization?.reference, 'Organization'), practitioner: idOf(role?.practitioner?.reference, 'Practitioner') }], dependents: [] };
    }
    case 'QuestionnaireResponse': {
      const q = r as QuestionnaireResponse;
      const rating = q.item?.find((i) => i.linkId === 'rating')?.answer?.[0]?.valueInteger;
      const practitioner = idOf(q.subject?.reference, 'Practitioner');
      if (!q.questionnaire?.endsWith('practitioner-review') || q.status !== 'completed' || typeof rating !== 'number' || !practitioner) return { facts: [], dependents: [] };
      void REVIEW_QUESTIONNAIRE;
      const roles = await repo.findByCriteria('PractitionerRole', `practitioner=Practitioner/${practitioner}`, 100);
      const orgs = [...new Set(roles.map((x) => idOf((parseResource(x) as PractitionerRole).organization?.reference, 'Organization')).filter((x): x is string => !!x))];
      return { facts: [{ ...base, kind: 'review', practitioner, orgs, rating, ...timed(instant(q.authored)) }], dependents: [] };
    }
    case 'PractitionerRole': {
      const role = r as PractitionerRole;
      const status = role.extension?.find((e) => e.url === VERIFICATION_URL)?.valueCode;
      return { facts: [{ ...base, kind: 'role', org: idOf(role.organization?.reference, 'Organization'), practitioner: idOf(role.practitioner?.reference, 'Practitioner'), active: role.active === true && (status === undefined || status === 'verified'), specialty: label(role.specialty?.[0]) }], dependents: [] };
    }
    case 'Organization': {
      const o = r as Organization;
      const tz = o.extension?.find((e) => e.url === TIMEZONE_URL)?.valueCode;
      return { facts: [{ ...base, kind: 'org', org: id, active: o.active !== false, ...(tz ? { tz } : {}), ...(o.name ? { name: o.name } : {}) }], dependents: [] };
    }
    case 'Patient':
      return { facts: [{ ...base, kind: 'patient' }], dependents: [] };
    default:
      return { facts: [], dependents: [] };
  }
}
