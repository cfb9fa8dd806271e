import type { Schedule } from '@medplum/fhirtypes';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource } from '../fhir/storage/types.js';
import { generateSlots, type SlotGenerationResult } from './generate-slots.js';

const DAY_MS = 86_400_000;
const MAX_ROLES = 10_000;

export interface SlotGenerationRun {
  roles: number;
  created: number;
  removed: number;
  failed: { role: string; error: string }[];
}

/**
 * The slot-generation job (the jobs module schedules it with agenda; give it the server's repository):
 * generates `horizonDays` ahead for every active role, and also revisits roles that still have an active
 * Schedule, so a role that was deactivated loses its free future slots. One role's failure (e.g. no time zone)
 * is reported and does not stop the others. Safe to run concurrently: generation is idempotent.
 */
export async function runSlotGeneration(repo: FhirRepository, opts: { horizonDays: number; now?: Date }): Promise<SlotGenerationRun> {
  const now = opts.now ?? new Date();
  const to = new Date(now.getTime() + opts.horizonDays * DAY_MS);
  const roles = new Set((await repo.findByCriteria('PractitionerRole', 'active=true', MAX_ROLES)).map((v) => `PractitionerRole/${v.id}`));
  for (const v of await repo.findByCriteria('Schedule', 'active=true', MAX_ROLES)) {
    const actor = (parseResource(v) as Schedule).actor.find((a) => a.reference?.startsWith('PractitionerRole/'))?.reference;
    if (actor) roles.add(actor);
  }
  const run: SlotGenerationRun = { roles: roles.size, created: 0, removed: 0, failed: [] };
  for (const role of roles) {
    let r: SlotGenerationResult;
    try {
      r = await generateSlots(repo, role, now, to, now);
    } catch (err) {
      run.failed.push({ role, error: (err as Error).message });
      continue;
    }
    run.created += r.created;
    run.removed += r.removed;
  }
  return run;
}
