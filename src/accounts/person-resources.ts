import type { ContactPoint, HumanName, Patient, Practitioner, Resource } from '@medplum/fhirtypes';
import type { Person } from './validate-person.js';

/**
 * The FHIR resources behind accounts. The e-mail address is also a telecom of the resource, so that
 * `Patient?email=` finds the person an account belongs to. No profile is claimed: the Medivoy patient
 * profile requires a birth date, which self-registration leaves optional.
 */
function name(p: Person): HumanName[] {
  return [{ use: 'official', family: p.familyName, given: [p.givenName] }];
}

function telecom(p: Person): ContactPoint[] {
  return [{ system: 'email', value: p.email, use: 'home' }, ...(p.phone ? [{ system: 'phone' as const, value: p.phone, use: 'mobile' as const }] : [])];
}

export function patientResource(p: Person): Patient {
  return { resourceType: 'Patient', active: true, name: name(p), telecom: telecom(p), ...(p.birthDate ? { birthDate: p.birthDate } : {}) };
}

export function practitionerResource(p: Person): Practitioner {
  return { resourceType: 'Practitioner', active: true, name: name(p), telecom: telecom(p), ...(p.birthDate ? { birthDate: p.birthDate } : {}) };
}

/** Given and family names of a Patient or Practitioner (for greetings and the password policy). */
export function personNames(resource: Resource | undefined): { given?: string; family?: string } {
  const names = (resource as { name?: HumanName[] } | undefined)?.name;
  const n = names?.find((x) => x.use === 'official') ?? names?.[0];
  return { given: n?.given?.[0], family: n?.family };
}
