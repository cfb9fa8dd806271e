import { AsyncLocalStorage } from 'node:async_hooks';
import type { Coverage, Organization, Resource } from '@medplum/fhirtypes';
import { errors, isOperationOutcomeError } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import { isTrustedIntegration, referenceId, type WriteGuard } from '../write-guards.js';
import { PAYER_ADAPTER_URL, readPayerRules } from './local-rules-adapter.js';

export const COVERAGE_CLASS_SYSTEM = 'http://terminology.hl7.org/CodeSystem/coverage-class';
const IDENTIFIER_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v2-0203';

/** Set while `$submit` stores its response (users cannot write a CoverageEligibilityResponse otherwise). */
export const issuingEligibility = new AsyncLocalStorage<true>();

/** The member id of a Coverage: `subscriberId`, else an identifier of type MB (member number). */
export function memberIdOf(c: Coverage): string | undefined {
  return c.subscriberId ?? c.identifier?.find((i) => i.type?.coding?.some((t) => t.system === IDENTIFIER_TYPE_SYSTEM && t.code === 'MB'))?.value;
}

/** The value of a Coverage class (`group`, `plan`, …). */
export function classValue(c: Coverage, code: string): string | undefined {
  return c.class?.find((k) => k.type?.coding?.some((t) => t.system === COVERAGE_CLASS_SYSTEM && t.code === code))?.value;
}

async function exists(repo: FhirRepository, type: string, id: string): Promise<Resource | undefined> {
  try {
    return parseResource(await repo.read(type, id));
  } catch (err) {
    if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) return undefined;
    throw err;
  }
}

/**
 * Coverage as the desk and the insurer need it: a beneficiary Patient the writer may reach (a patient only
 * themselves), a subscriber, a payor Organization that exists, a member id, a plan (class `plan`, and `group`
 * when the insurer has groups) and a type. Refused with 422 (403 for another patient's coverage) before
 * anything is stored. Backend integrations (isTrustedIntegration) import coverage as recorded elsewhere.
 */
export function coverageGuard(deps: { system: FhirRepository }): WriteGuard {
  return {
    types: ['Coverage', 'Organization', 'CoverageEligibilityResponse'],
    // An integration importing coverage recorded elsewhere is not held to the desk's rules (write-guards.ts).
    appliesTo: (type, access) => type !== 'Coverage' || !isTrustedIntegration(access),
    async prepare(resource, ctx) {
      if (resource.resourceType === 'Organization') {
        const org = resource as Organization;
        const { problems } = readPayerRules(org);
        const adapter = org.extension?.filter((e) => e.url === PAYER_ADAPTER_URL) ?? [];
        if (adapter.length > 1 || adapter.some((e) => !e.valueCode)) problems.push(`'${PAYER_ADAPTER_URL}' appears once, with valueCode`);
        if (problems.length) throw errors.businessRule(`The payer configuration of this Organization is not valid: ${problems.join('; ')}`, ['Organization.extension']);
        return resource;
      }
      if (resource.resourceType === 'CoverageEligibilityResponse') {
        // Billing trusts these for the patient share: apart from $submit only trusted integrations write them
        // (a backend service not bound to one insurer, e.g. an EDI bridge; a system administrator).
        const trusted = ctx.access.role === 'system-admin' || isTrustedIntegration(ctx.access);
        if (!issuingEligibility.getStore() && !trusted) throw errors.forbidden('CoverageEligibilityResponse is written by the server: POST a CoverageEligibilityRequest to $submit');
        return resource;
      }
      const c = resource as Coverage;
      const where = (p: string) => [`Coverage.${p}`];
      const beneficiary = referenceId(c.beneficiary, 'Patient');
      if (!beneficiary) throw errors.businessRule('Coverage.beneficiary must reference a Patient (Patient/[id])', where('beneficiary'));
      const me = ctx.access.role === 'patient' && ctx.access.fhirUser?.startsWith('Patient/') ? ctx.access.fhirUser.slice(8) : undefined;
      if (me && me !== beneficiary) throw errors.forbidden(`A patient records their own coverage only, not that of Patient/${beneficiary}`);
      if (!(await exists(ctx.tx, 'Patient', beneficiary))) throw errors.businessRule(`The beneficiary Patient/${beneficiary} is not known`, where('beneficiary'));
      const subscriber = c.subscriber?.reference;
      const sub = /^(Patient|RelatedPerson)\/([A-Za-z0-9\-.]{1,64})$/.exec(subscriber ?? '');
      if (!sub) throw errors.businessRule('Coverage.subscriber must reference the Patient or RelatedPerson who holds the policy', where('subscriber'));
      if (!(await exists(deps.system, sub[1]!, sub[2]!))) throw errors.businessRule(`The subscriber ${subscriber} is not known`, where('subscriber'));
      const payors = (c.payor ?? []).map((p) => referenceId(p, 'Organization'));
      // An insurer's client writes only its own payor's coverage (its scopes are confined to it as well).
      if (ctx.access.payor && !payors.includes(ctx.access.payor.slice('Organization/'.length))) throw errors.forbidden(`This client acts for ${ctx.access.payor} and writes only its coverage`);
      if (!payors.length || payors.some((p) => !p)) throw errors.businessRule('Coverage.payor must reference the insurer Organization (Organization/[id])', where('payor'));
      for (const p of payors) {
        if (!(await exists(deps.system, 'Organization', p!))) throw errors.businessRule(`The payor Organization/${p} is not known`, where('payor'));
      }
      const member = memberIdOf(c);
      if (!member?.trim()) throw errors.businessRule('Coverage needs the member id: subscriberId, or an identifier of type MB', where('subscriberId'));
      if (!classValue(c, 'plan')) throw errors.businessRule(`Coverage.class needs the plan (type ${COVERAGE_CLASS_SYSTEM}|plan)`, where('class'));
      if (!c.type?.coding?.some((t) => t.code) && !c.type?.text) throw errors.businessRule('Coverage.type is required (e.g. http://terminology.hl7.org/CodeSystem/v3-ActCode|EHCPOL)', where('type'));
      if (c.period?.start && c.period.end && c.period.start > c.period.end) throw errors.businessRule('Coverage.period ends before it starts', where('period'));
      return resource;
    },
  };
}
