import type { Basic, Practitioner } from '@medplum/fhirtypes';
import { errors, isOperationOutcomeError } from '../fhir/outcomes.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { parseResource, type ResourceVersion } from '../fhir/storage/types.js';
import { licencesOf } from './practitioner-extensions.js';

/** Code of the Basic resources that record which Practitioner holds a licence. */
export const LICENCE_CLAIM = { system: 'http://medivoy.example/fhir/CodeSystem/registry-claim', code: 'practitioner-licence' } as const;

/**
 * A claim younger than this is never taken over, even if its holder does not (yet) carry the licence: the
 * holder may be between claiming and writing its Practitioner. Older claims of a holder that dropped the
 * licence (or failed to write it) are stale and can be taken over.
 */
const CLAIM_GRACE_MS = 60_000;

/** R4 3.1.1.4.8: `\`, `|`, `,` and `$` in a search value are escaped with a backslash. */
const esc = (s: string) => s.replace(/[\\|,$]/g, (c) => `\\${c}`);

/**
 * Makes `practitionerId` the only holder of each licence (identifier system = issuer) it carries, or fails
 * with 409. A licence is unique per issuer even under concurrent writes: the claim is a Basic resource created
 * with a conditional create on the licence identifier, which the repository serializes per criteria across
 * processes, so of two practitioners claiming one licence exactly one creates the claim. Claims are written
 * with the server's repository: they are a registry, not data the caller owns.
 */
export async function claimLicences(system: FhirRepository, practitionerId: string, practitioner: Practitioner): Promise<void> {
  const me = `Practitioner/${practitionerId}`;
  for (const licence of licencesOf(practitioner.identifier)) {
    const claim: Basic = {
      resourceType: 'Basic',
      code: { coding: [{ ...LICENCE_CLAIM }] },
      identifier: [{ system: licence.system, value: licence.value }],
      subject: { reference: me },
    };
    const criteria = `identifier=${encodeURIComponent(`${esc(licence.system)}|${esc(licence.value)}`)}`;
    for (let attempt = 0; ; attempt++) {
      const result = await system.create(claim, { ifNoneExist: criteria });
      if (!result.matched) break;
      const holder = (parseResource(result.version) as Basic).subject?.reference;
      if (holder === me) break;
      if (attempt >= 2 || !(await isStale(system, result.version, holder, licence))) {
        throw errors.conflict(`Licence ${licence.value} of ${licence.system} is already registered to another practitioner`);
      }
      try {
        await system.update({ ...claim, id: result.version.id }, { ifMatch: result.version.versionId });
        break;
      } catch (err) {
        // Another writer took the stale claim first: look again.
        if (!(isOperationOutcomeError(err) && err.status === 412)) throw err;
      }
    }
  }
}

async function isStale(system: FhirRepository, claim: ResourceVersion, holder: string | undefined, licence: { system: string; value: string }): Promise<boolean> {
  if (Date.now() - Date.parse(claim.lastUpdated) < CLAIM_GRACE_MS) return false;
  if (!holder?.startsWith('Practitioner/')) return true;
  try {
    const p = parseResource(await system.read('Practitioner', holder.slice('Practitioner/'.length))) as Practitioner;
    return !licencesOf(p.identifier).some((l) => l.system === licence.system && l.value === licence.value);
  } catch (err) {
    if (isOperationOutcomeError(err) && (err.status === 404 || err.status === 410)) return true;
    throw err;
  }
}
