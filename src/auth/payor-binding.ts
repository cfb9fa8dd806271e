import { patientCompartment } from '../fhir/search/compartment.js';

/** How a client registration names the insurer it acts for (`payor_organization`). */
export const PAYOR_REFERENCE = /^Organization\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * The insurance records an insurer's client may reach, each with the search parameter that names the payor:
 * a Coverage by its `payor`, a CoverageEligibilityResponse by its `insurer`.
 */
const PAYOR_PARAMETER: Record<string, string> = {
  Coverage: 'payor',
  CoverageEligibilityResponse: 'insurer',
};

/**
 * The reach of a `system/` scope of a client bound to a payor Organization: Coverage and eligibility
 * responses of that payor only (the criteria are ANDed with any granular restriction of the scope); no other
 * patient data at all, whatever its scopes say (found by no search, "not found" when read); resources outside
 * the Patient compartment (Organization, Practitioner…) as for any system client. Searches are narrowed and
 * reads of other payors' records are "not found", by the same access policy that applies these criteria
 * (access-policy.ts).
 */
export function payorReach(payor: string, type: string, params: [string, string][]): { params: [string, string][]; patients?: string[] } {
  const param = PAYOR_PARAMETER[type];
  if (param) return { params: [...params, [param, payor]] };
  // No patient at all: reads are "not found", searches empty, writes refused.
  if (type === 'Patient' || patientCompartment().has(type)) return { params, patients: [] };
  return { params };
}
