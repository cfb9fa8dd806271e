import type {
  Coding, Coverage, CoverageEligibilityRequest, CoverageEligibilityResponse, CoverageEligibilityResponseInsuranceItemBenefit,
  HumanName, Organization, Patient, Resource,
} from '@medplum/fhirtypes';
import { errors, isOperationOutcomeError, issue, outcome, OperationOutcomeError } from '../fhir/outcomes.js';
import type { BusinessOperation, OperationContext, OperationInput, OperationResult } from '../fhir/operations/registry.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import { validateResource } from '../fhir/validation/validate-resource.js';
import { referenceId } from '../write-guards.js';
import { classValue, issuingEligibility, memberIdOf } from './coverage-guard.js';
import { BENEFIT_CATEGORY_SYSTEM, PAYER_ADAPTER_URL, PAYER_RULES_URL } from './local-rules-adapter.js';
import type { BenefitAnswer, EligibilityAnswer, EligibilityQuery, PayerAdapters, PersonInQuery } from './payer-adapter.js';

const BENEFIT_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/benefit-type';
/** `coinsurance` is not in HL7's benefit-type code system (see CONTRACT.md). */
const MEDIVOY_BENEFIT_TYPE_SYSTEM = 'http://medivoy.example/fhir/CodeSystem/benefit-type';
const ADJUDICATION_ERROR_SYSTEM = 'http://terminology.hl7.org/CodeSystem/adjudication-error';
/** Asked when the request names no category: "health benefit plan coverage" (X12 service type 30). */
const DEFAULT_CATEGORY: Coding = { system: BENEFIT_CATEGORY_SYSTEM, code: '30', display: 'Health Benefit Plan Coverage' };

export interface EligibilityDeps {
  payers: PayerAdapters;
  /** The server's repository: the payor Organization and subscriber are read here (they are not the caller's data). */
  system: FhirRepository;
}

/**
 * `CoverageEligibilityRequest/$submit`: type level with the request in the body (stored with the response),
 * or instance level on a stored request. The Coverage must be the patient's and the insurer its payor; the
 * payor Organization's adapter answers, and the CoverageEligibilityResponse is stored (with the request, in
 * one unit of work) and returned, 201. Everything is read and written with the caller's access: they must
 * reach the patient and the Coverage, and may create the request and its response.
 */
export function eligibilityOperation(deps: EligibilityDeps): BusinessOperation {
  return {
    name: 'submit', levels: ['type', 'instance'], resourceTypes: ['CoverageEligibilityRequest'], methods: ['POST'], affectsState: true, body: 'resource',
    description: "Checks a patient's Coverage with the payer (its configured adapter) and stores the CoverageEligibilityResponse: in force, deductible, copay, coinsurance per benefit category.",
    parameters: [
      { name: 'resource', use: 'in', min: 0, max: '1', type: 'CoverageEligibilityRequest', documentation: 'Type level: the request (or send it as the body itself); instance level: none' },
      { name: 'return', use: 'out', min: 1, max: '1', type: 'CoverageEligibilityResponse' },
    ],
    handler: (input, ctx) => submit(input, ctx, deps),
  };
}

async function submit(input: OperationInput, ctx: OperationContext, deps: EligibilityDeps): Promise<OperationResult> {
  let request: CoverageEligibilityRequest;
  const stored = !!input.target.id;
  if (stored) {
    if (input.resource) throw errors.badRequest('CoverageEligibilityRequest/[id]/$submit takes no body: it submits the stored request');
    request = parseResource(await ctx.repo.read('CoverageEligibilityRequest', input.target.id!)) as CoverageEligibilityRequest;
  } else {
    const given = input.resource ?? input.parameters.parameter?.find((p) => p.name === 'resource')?.resource;
    if (!given || given.resourceType !== 'CoverageEligibilityRequest') throw errors.badRequest('CoverageEligibilityRequest/$submit needs a CoverageEligibilityRequest as the body (or as parameter `resource`)');
    request = given as CoverageEligibilityRequest;
    if (request.id) throw errors.badRequest('A new CoverageEligibilityRequest has no id: to resubmit a stored one, POST CoverageEligibilityRequest/[id]/$submit');
    const issues = validateResource(request).filter((i) => i.severity === 'error' || i.severity === 'fatal');
    if (issues.length) throw errors.invalid(issues);
  }
  const checked = await checkRequest(request, ctx.repo, deps);
  const adapter = deps.payers.get(checked.adapterKind);
  if (!adapter) throw errors.businessRule(`The payor ${checked.payorRef} names the eligibility adapter '${checked.adapterKind}', which this server does not have (known: ${deps.payers.kinds().join(', ')})`);
  let answer: EligibilityAnswer;
  try {
    answer = await adapter.check(checked.query);
  } catch (err) {
    ctx.reportError(err);
    throw new OperationOutcomeError(502, outcome([issue('error', 'transient', `The payer ${checked.payorRef} did not answer: nothing was stored; try again later`)]));
  }
  const result = await issuingEligibility.run(true, () => ctx.repo.transaction(async (tx) => {
    const requestRef = stored ? `CoverageEligibilityRequest/${request.id}` : `CoverageEligibilityRequest/${(await tx.create(request)).version.id}`;
    const response = responseOf(request, requestRef, checked, answer);
    return tx.create(response);
  }));
  const body = parseResource(result.version);
  return { status: 201, resource: body, headers: { location: `${ctx.baseUrl}/CoverageEligibilityResponse/${body.id}/_history/${result.version.versionId}` } };
}

interface CheckedRequest {
  patientRef: string;
  coverageRef: string;
  payorRef: string;
  adapterKind: string;
  query: EligibilityQuery;
}

/** The request's references resolved and checked against each other; 422 naming the first that does not hold. */
async function checkRequest(r: CoverageEligibilityRequest, repo: FhirRepository, deps: EligibilityDeps): Promise<CheckedRequest> {
  if (r.status !== 'active') throw errors.businessRule(`Only an active request is submitted, not one with status '${r.status}'`, ['CoverageEligibilityRequest.status']);
  const purposes = r.purpose ?? [];
  if (!purposes.some((p) => p === 'validation' || p === 'benefits')) {
    throw errors.businessRule("purpose must include 'validation' (is the coverage in force) or 'benefits' (what it pays); 'discovery' and 'auth-requirements' are not supported", ['CoverageEligibilityRequest.purpose']);
  }
  const patientId = referenceId(r.patient, 'Patient');
  if (!patientId) throw errors.businessRule('CoverageEligibilityRequest.patient must reference a Patient (Patient/[id])', ['CoverageEligibilityRequest.patient']);
  const patient = await readOrNull<Patient>(repo, 'Patient', patientId);
  if (!patient) throw errors.businessRule(`The patient Patient/${patientId} is not known`, ['CoverageEligibilityRequest.patient']);
  const insurances = r.insurance ?? [];
  if (insurances.length !== 1) throw errors.businessRule('The request names exactly one insurance (insurance[0].coverage); submit one request per Coverage', ['CoverageEligibilityRequest.insurance']);
  const coverageId = referenceId(insurances[0]!.coverage, 'Coverage');
  if (!coverageId) throw errors.businessRule('insurance[0].coverage must reference a Coverage (Coverage/[id])', ['CoverageEligibilityRequest.insurance[0].coverage']);
  const coverage = await readOrNull<Coverage>(repo, 'Coverage', coverageId);
  if (!coverage) throw errors.businessRule(`The coverage Coverage/${coverageId} is not known`, ['CoverageEligibilityRequest.insurance[0].coverage']);
  if (coverage.beneficiary?.reference !== `Patient/${patientId}`) {
    throw errors.businessRule(`Coverage/${coverageId} is not a coverage of Patient/${patientId}`, ['CoverageEligibilityRequest.insurance[0].coverage']);
  }
  const insurerId = referenceId(r.insurer, 'Organization');
  if (!insurerId) throw errors.businessRule('CoverageEligibilityRequest.insurer must reference the payor Organization', ['CoverageEligibilityRequest.insurer']);
  const payor = await readOrNull<Organization>(deps.system, 'Organization', insurerId);
  if (!payor) throw errors.businessRule(`The payor Organization/${insurerId} is not known`, ['CoverageEligibilityRequest.insurer']);
  if (!(coverage.payor ?? []).some((p) => p.reference === `Organization/${insurerId}`)) {
    throw errors.businessRule(`Organization/${insurerId} is not the payor of Coverage/${coverageId}`, ['CoverageEligibilityRequest.insurer']);
  }
  const adapterKind = payor.extension?.find((e) => e.url === PAYER_ADAPTER_URL)?.valueCode ?? (payor.extension?.some((e) => e.url === PAYER_RULES_URL) ? 'local-rules' : undefined);
  if (!adapterKind) throw errors.businessRule(`The payor Organization/${insurerId} has no eligibility configuration (extension ${PAYER_RULES_URL} or ${PAYER_ADAPTER_URL})`, ['CoverageEligibilityRequest.insurer']);
  const memberId = memberIdOf(coverage);
  if (!memberId) throw errors.businessRule(`Coverage/${coverageId} has no member id`, ['CoverageEligibilityRequest.insurance[0].coverage']);

  const person = (p: Resource | undefined): PersonInQuery => {
    const x = p as { name?: HumanName[]; birthDate?: string; gender?: string } | undefined;
    return { name: x?.name?.[0], birthDate: x?.birthDate, gender: x?.gender };
  };
  const subscriberRef = coverage.subscriber?.reference;
  const [subType, subId] = (subscriberRef ?? '').split('/');
  const subscriber = subscriberRef === `Patient/${patientId}` ? patient : subType && subId ? await readOrNull<Resource>(deps.system, subType, subId) : undefined;
  const categories = (r.item ?? []).map((i) => i.category?.coding?.find((c) => c.system === BENEFIT_CATEGORY_SYSTEM) ?? i.category?.coding?.[0]).filter((c): c is Coding => !!c?.code);
  if ((r.item ?? []).length && categories.length !== r.item!.length) {
    throw errors.businessRule(`Every item names its benefit category (a coding of ${BENEFIT_CATEGORY_SYSTEM})`, ['CoverageEligibilityRequest.item']);
  }
  const serviceDate = (r.servicedDate ?? r.servicedPeriod?.start ?? r.created ?? new Date().toISOString()).slice(0, 10);
  return {
    patientRef: `Patient/${patientId}`, coverageRef: `Coverage/${coverageId}`, payorRef: `Organization/${insurerId}`, adapterKind,
    query: {
      payer: { reference: `Organization/${insurerId}`, name: payor.name, identifiers: payor.identifier ?? [], organization: payor },
      subscriber: { ...person(subscriber), memberId },
      ...(subscriberRef !== `Patient/${patientId}` ? { dependent: { ...person(patient), relationship: coverage.relationship?.coding?.[0]?.code } } : {}),
      group: classValue(coverage, 'group'), plan: classValue(coverage, 'plan'),
      serviceDate, categories: categories.length ? categories : [DEFAULT_CATEGORY], coverage,
    },
  };
}

/** The response as CONTRACT.md shapes it (billing reads `insurance[0]`, its item[0] and the benefit types). */
function responseOf(r: CoverageEligibilityRequest, requestRef: string, c: CheckedRequest, a: EligibilityAnswer): CoverageEligibilityResponse {
  const failed = !!a.errors?.length;
  const benefit = (b: BenefitAnswer): CoverageEligibilityResponseInsuranceItemBenefit =>
    b.kind === 'coinsurance'
      ? { type: { coding: [{ system: MEDIVOY_BENEFIT_TYPE_SYSTEM, code: 'coinsurance', display: 'Coinsurance' }] }, allowedUnsignedInt: b.percent }
      : { type: { coding: [{ system: BENEFIT_TYPE_SYSTEM, code: b.kind, display: b.kind === 'copay' ? 'Copayment per service' : 'Deductible' }] }, allowedMoney: b.money };
  return {
    resourceType: 'CoverageEligibilityResponse',
    status: 'active',
    purpose: r.purpose,
    patient: { reference: c.patientRef },
    ...(r.servicedDate ? { servicedDate: r.servicedDate } : r.servicedPeriod ? { servicedPeriod: r.servicedPeriod } : {}),
    created: new Date().toISOString(),
    request: { reference: requestRef },
    outcome: failed ? 'error' : 'complete',
    ...(a.disposition ? { disposition: a.disposition } : {}),
    insurer: { reference: c.payorRef },
    insurance: [{
      coverage: { reference: c.coverageRef },
      inforce: failed ? false : a.inforce,
      ...(a.benefitPeriod ? { benefitPeriod: a.benefitPeriod } : {}),
      ...(a.items.length ? {
        item: a.items.map((i) => ({
          category: { coding: [i.category] },
          ...(i.covered ? {} : { excluded: true }),
          ...(i.benefits.length ? { benefit: i.benefits.map(benefit) } : {}),
        })),
      } : {}),
    }],
    ...(failed ? { error: a.errors!.map((e) => ({ code: { coding: [{ system: ADJUDICATION_ERROR_SYSTEM, code: e.code, display: e.display }], text: e.display } })) } : {}),
  };
}

async function readOrNull<T extends Resource>(repo: FhirRepository, type: string, id: string): Promise<T | undefined> {
  try {
    return parseResource(await repo.read(type, id)) as T;
  } catch (err) {
    if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) return undefined;
    throw err;
  }
}
