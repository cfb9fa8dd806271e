import type { Subscription } from '@medplum/fhirtypes';
import type { Logger } from '../infra/logger.js';
import type { SearchParameterRegistry } from '../fhir/search/parameters.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import { parseSubscription, type SubscriptionSpec } from './subscription-spec.js';

export interface SpecOptions {
  baseUrl: () => string | undefined;
  maxTimeoutSeconds: number;
  defaultTimeoutSeconds: number;
}

/** The active subscriptions, read from the repository and compiled once per version. */
export class SubscriptionDirectory {
  private readonly compiled = new Map<string, SubscriptionSpec>();

  constructor(
    private readonly repo: FhirRepository,
    private readonly registry: SearchParameterRegistry,
    private readonly opts: SpecOptions,
    private readonly logger: Logger,
  ) {}

  spec(sub: Subscription): SubscriptionSpec {
    return parseSubscription(sub, this.registry, { baseUrl: this.opts.baseUrl(), maxTimeoutSeconds: this.opts.maxTimeoutSeconds, defaultTimeoutSeconds: this.opts.defaultTimeoutSeconds });
  }

  async active(): Promise<SubscriptionSpec[]> {
    const versions = await this.repo.findByCriteria('Subscription', 'status=active', 10_000);
    const out: SubscriptionSpec[] = [];
    const seen = new Set<string>();
    for (const v of versions) {
      const key = `${v.id}/${v.versionId}`;
      seen.add(key);
      let spec = this.compiled.get(key);
      if (!spec) {
        try {
          spec = this.spec(parseResource(v) as Subscription);
        } catch (err) {
          this.logger.warn({ err, subscription: v.id }, 'an active Subscription cannot be compiled; it is skipped');
          continue;
        }
        spec.id = v.id;
        spec.versionId = v.versionId;
        this.compiled.set(key, spec);
      }
      out.push(spec);
    }
    for (const key of this.compiled.keys()) if (!seen.has(key)) this.compiled.delete(key);
    return out;
  }
}
