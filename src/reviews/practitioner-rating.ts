import { readFileSync } from 'node:fs';
import type { Extension, Practitioner, Questionnaire, QuestionnaireResponse, SearchParameter } from '@medplum/fhirtypes';
import type { Logger } from '../infra/logger.js';
import { errors } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';

export const RATING_URL = 'http://medivoy.example/fhir/StructureDefinition/practitioner-rating';
export const REVIEW_COUNT_URL = 'http://medivoy.example/fhir/StructureDefinition/practitioner-review-count';
export const REVIEW_QUESTIONNAIRE = 'http://medivoy.example/fhir/Questionnaire/practitioner-review';

const resource = <T>(name: string) => JSON.parse(readFileSync(new URL(`../../resources/${name}`, import.meta.url), 'utf8')) as T;
/** Most reviews one recompute reads; far above any practitioner's count, and a clear failure if ever reached. */
const MAX_REVIEWS = 100_000;
const MAX_ATTEMPTS = 20;

/** The rating answer of a review QuestionnaireResponse. */
export const ratingOf = (qr: QuestionnaireResponse) => qr.item?.find((i) => i.linkId === 'rating')?.answer?.[0]?.valueInteger;

/**
 * The practitioner's public rating: average and count of their reviews, as two extensions on Practitioner.
 * Kept consistent under concurrent reviews by recomputing from all stored reviews and writing with If-Match:
 * each reviewer's recompute starts after their review committed and reads the Practitioner version before
 * the reviews, so whichever write lands last has seen every review committed before it; a writer that
 * lost the race (412) starts over. Chosen over an atomic counter because it also repairs itself (a
 * crashed recompute is corrected by the next review) and the average never drifts from the data.
 */
export class PractitionerRatings {
  constructor(private readonly deps: { repo: FhirRepository; logger: Logger }) {}

  /** Loads the product's Questionnaire and the `rating` SearchParameter through the repository when absent. */
  async ensureDefinitions(loadSearchParameter: boolean): Promise<void> {
    const q = resource<Questionnaire>('questionnaire-practitioner-review.json');
    await this.deps.repo.create(q, { ifNoneExist: `url=${q.url}`, id: q.id });
    if (!loadSearchParameter) return;
    const sp = resource<SearchParameter>('searchparameter-practitioner-rating.json');
    // Conditional on the url, under the repository's criteria lock: two processes starting together load it once.
    const res = await this.deps.repo.create(sp, { ifNoneExist: `url=${sp.url}`, id: sp.id });
    if (res.created) this.deps.logger.info({ code: sp.code }, 'search parameter Practitioner?rating loaded');
  }

  /** Recomputes `Practitioner/id`'s rating from its reviews and stores it; returns the stored values. */
  async recompute(practitionerRef: string): Promise<{ average?: number; count: number }> {
    const [, id] = practitionerRef.split('/');
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.deps.repo.read('Practitioner', id!);
      const reviews = await this.deps.repo.findByCriteria('QuestionnaireResponse', `subject=${practitionerRef}&questionnaire=${REVIEW_QUESTIONNAIRE}&status=completed`, MAX_REVIEWS + 1);
      if (reviews.length > MAX_REVIEWS) throw new Error(`${practitionerRef} has more than ${MAX_REVIEWS} reviews: the rating needs an incremental aggregate`);
      const ratings = reviews.map((v) => ratingOf(JSON.parse(v.json!) as QuestionnaireResponse)).filter((r): r is number => typeof r === 'number');
      const count = ratings.length;
      const average = count ? Math.round((ratings.reduce((a, b) => a + b, 0) / count) * 100) / 100 : undefined;
      const practitioner = JSON.parse(current.json!) as Practitioner;
      const others = (practitioner.extension ?? []).filter((e) => e.url !== RATING_URL && e.url !== REVIEW_COUNT_URL);
      const ours: Extension[] = [...(average !== undefined ? [{ url: RATING_URL, valueDecimal: average }] : []), { url: REVIEW_COUNT_URL, valueInteger: count }];
      try {
        await this.deps.repo.update({ ...practitioner, extension: [...others, ...ours] }, { ifMatch: current.versionId });
        return { average, count };
      } catch (err) {
        if ((err as { status?: number }).status !== 412 && (err as { status?: number }).status !== 409) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * 20 * (attempt + 1))); // de-synchronize the contenders
      }
    }
    throw errors.conflict(`The rating of ${practitionerRef} is being changed by many reviews at once; it will be corrected by the next one`);
  }
}
