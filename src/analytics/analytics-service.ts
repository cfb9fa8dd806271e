import type { FhirRepository } from '../fhir/storage/repository.js';
import type { AnalyticsCache } from './cache.js';
import type { NativeAggregation } from './native-aggregation.js';
import { assemble, type Figures } from './metrics.js';
import { parsePeriod, previousPeriod } from './period.js';
import { runPipelines } from './pipelines.js';
import type { AnalyticsProjection } from './projection.js';
import { resolveScope, type AnalyticsScope } from './scope.js';

export interface AnalyticsConfig {
  cacheMs: number;
  maxPeriodDays: number;
}

/** The figures of a scope and period: projection caught up, then from the cache or the pipelines. */
export class AnalyticsService {
  constructor(
    readonly deps: {
      projection: AnalyticsProjection; cache: AnalyticsCache; system: FhirRepository; config: AnalyticsConfig;
      /** Runs passes without the driver where it can (FerretDB's PostgreSQL); the driver's pipelines otherwise. */
      native?: NativeAggregation;
    },
  ) {}

  scope(orgId: string | undefined, timezone: string | undefined): Promise<AnalyticsScope> {
    return resolveScope(this.deps.system, orgId, timezone);
  }

  /** Checks the period (400s) before anything else runs. */
  period(scope: AnalyticsScope, start: string | undefined, end: string | undefined) {
    return parsePeriod(start, end, scope.timezone, this.deps.config.maxPeriodDays);
  }

  async figures(scope: AnalyticsScope, start: string | undefined, end: string | undefined): Promise<{ figures: Figures; cached: boolean }> {
    const p = this.period(scope, start, end);
    await this.deps.projection.catchUp();
    const { value, hit } = await this.deps.cache.getOrCompute(scope.key, [p.start, p.end, p.timezone], async () =>
      assemble(await runPipelines(this.deps.projection.facts, scope.org, p, previousPeriod(p), { native: this.deps.native }), p, scope.org));
    return { figures: value, cached: hit };
  }
}
