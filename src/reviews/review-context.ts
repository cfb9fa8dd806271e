import { AsyncLocalStorage } from 'node:async_hooks';
import type { Context, Next } from 'koa';
import type { PractitionerRatings } from './practitioner-rating.js';

/**
 * The server's rating service for the `$review` handler. The handler runs with the caller's scoped
 * repository, which (rightly) cannot read other patients' reviews or write the Practitioner; the rating
 * recompute needs the server's repository. HandlerContext carries no such port for reviews, so a
 * middleware in front of the FHIR router puts this server's service into AsyncLocalStorage (per server,
 * so several servers in one process each use their own).
 */
const storage = new AsyncLocalStorage<PractitionerRatings>();

export function reviewsContext(ratings: PractitionerRatings) {
  return (_ctx: Context, next: Next) => storage.run(ratings, next);
}

export function currentRatings(): PractitionerRatings | undefined {
  return storage.getStore();
}
