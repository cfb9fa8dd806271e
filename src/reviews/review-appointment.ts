import type { Appointment, Parameters, PractitionerRole, QuestionnaireResponse } from '@medplum/fhirtypes';
import { errors } from '../fhir/outcomes.js';
import type { BusinessOperation, OperationContext, OperationInput, OperationResult } from '../fhir/operations/registry.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { REVIEW_QUESTIONNAIRE, type PractitionerRatings } from './practitioner-rating.js';

/** Identifier system of reviews: the value is the Appointment id, so one appointment has at most one review. */
export const REVIEW_IDENTIFIER_SYSTEM = 'http://medivoy.example/fhir/review-of-appointment';
/** QuestionnaireResponse.basedOn cannot reference an Appointment in R4, so the link is an extension. */
export const REVIEWED_APPOINTMENT_URL = 'http://medivoy.example/fhir/StructureDefinition/reviewed-appointment';
const MAX_COMMENT = 2000;

function reviewInput(p: Parameters): { rating: number; comment?: string } {
  if (!p.parameter?.length) throw errors.badRequest('The body must be a Parameters resource with rating (valueInteger 1-5) and comment (valueString)');
  const rating = p.parameter?.find((x) => x.name === 'rating');
  const comment = p.parameter?.find((x) => x.name === 'comment')?.valueString;
  const value = rating?.valueInteger ?? rating?.valueDecimal;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 5) throw errors.badRequest('rating must be an integer from 1 to 5', ['Parameters.parameter.where(name=\'rating\')']);
  if (comment !== undefined && comment.length > MAX_COMMENT) throw errors.badRequest(`comment must be at most ${MAX_COMMENT} characters`, ['Parameters.parameter.where(name=\'comment\')']);
  return { rating: value, comment: comment?.trim() || undefined };
}

/** The Practitioner an appointment is with (directly, or through a PractitionerRole). */
async function practitionerOf(a: Appointment, repo: FhirRepository): Promise<string | undefined> {
  const refs = (a.participant ?? []).map((p) => p.actor?.reference ?? '');
  const direct = refs.find((r) => r.startsWith('Practitioner/'));
  if (direct) return direct;
  const role = refs.find((r) => r.startsWith('PractitionerRole/'));
  if (!role) return undefined;
  return (JSON.parse((await repo.read('PractitionerRole', role.slice(17))).json!) as PractitionerRole).practitioner?.reference;
}

/**
 * `POST Appointment/[id]/$review` (Parameters rating, comment): the appointment's own patient reviews the
 * practitioner once the appointment is fulfilled, once. Stored as a QuestionnaireResponse to
 * Questionnaire/practitioner-review (subject the Practitioner, author the Patient) through the caller's
 * repository; a conditional create on the appointment-derived identifier (serialized across processes by
 * the repository's criteria lock) lets exactly one of concurrent duplicates through. Then the
 * practitioner's rating is recomputed. Answers 201 with the QuestionnaireResponse.
 */
export function reviewOperation(deps: { ratings: PractitionerRatings }): BusinessOperation {
  return {
    name: 'review', levels: ['instance'], resourceTypes: ['Appointment'], methods: ['POST'], affectsState: true,
    description: "The patient of a fulfilled appointment rates its practitioner (1-5, with a comment), once.",
    parameters: [
      { name: 'rating', use: 'in', min: 1, max: '1', type: 'integer', documentation: '1 to 5' },
      { name: 'comment', use: 'in', min: 0, max: '1', type: 'string' },
      { name: 'return', use: 'out', min: 1, max: '1', type: 'QuestionnaireResponse' },
    ],
    handler: (input, ctx) => review(input, ctx, deps.ratings),
  };
}

async function review(input: OperationInput, ctx: OperationContext, ratings: PractitionerRatings): Promise<OperationResult> {
  const id = input.target.id;
  const me = ctx.access?.fhirUser;
  if (ctx.access?.role !== 'patient' || !me?.startsWith('Patient/')) throw errors.forbidden('Only the patient of an appointment may review it (sign in as that patient)');
  const { rating, comment } = reviewInput(input.parameters);

  const appointment = JSON.parse((await ctx.repo.read('Appointment', id!)).json!) as Appointment;
  if (!appointment.participant?.some((p) => p.actor?.reference === me)) throw errors.forbidden('Only the patient of this appointment may review it');
  if (appointment.status !== 'fulfilled') throw errors.conflict(`Only a fulfilled appointment can be reviewed; this one is ${appointment.status}`);
  const practitioner = await practitionerOf(appointment, ctx.repo);
  if (!practitioner) throw errors.conflict('This appointment has no practitioner to review');

  const review: QuestionnaireResponse = {
    resourceType: 'QuestionnaireResponse',
    identifier: { system: REVIEW_IDENTIFIER_SYSTEM, value: appointment.id },
    extension: [{ url: REVIEWED_APPOINTMENT_URL, valueReference: { reference: `Appointment/${appointment.id}` } }],
    questionnaire: REVIEW_QUESTIONNAIRE,
    status: 'completed',
    subject: { reference: practitioner },
    author: { reference: me },
    source: { reference: me },
    authored: new Date().toISOString(),
    item: [
      { linkId: 'rating', answer: [{ valueInteger: rating }] },
      ...(comment ? [{ linkId: 'comment', answer: [{ valueString: comment }] }] : []),
    ],
  };
  const res = await ctx.repo.create(review, { ifNoneExist: `identifier=${REVIEW_IDENTIFIER_SYSTEM}|${appointment.id}` });
  if (!res.created) throw errors.conflict('This appointment has already been reviewed');
  try {
    await ratings.recompute(practitioner);
  } catch (err) {
    ctx.reportError(err); // the review is stored; the next review's recompute includes it
  }
  return {
    status: 201,
    headers: { Location: `${ctx.baseUrl}/QuestionnaireResponse/${res.version.id}/_history/${res.version.versionId}`, ETag: `W/"${res.version.versionId}"` },
    resource: { json: res.version.json! },
  };
}
