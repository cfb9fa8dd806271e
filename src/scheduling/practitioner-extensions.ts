import type { Extension, Identifier, PractitionerRole } from '@medplum/fhirtypes';

/**
 * The product's extensions on PractitionerRole (and the HL7 time-zone extension on Location/Organization).
 * These URLs are the documentation of record; booking (booking.ts) reads the same verification URL.
 *
 * - verification-status (valueCode `pending` | `verified` | `rejected`): set to `pending` on every role a
 *   practitioner writes, changed only by `PractitionerRole/$verify`. A role with no such extension was created
 *   by an administrator or the system and counts as verified.
 * - verification-reason (valueString): why a role was rejected.
 * - consultation-fee (valueMoney): the fee of one consultation in this role.
 * - slot-length (valueDuration, UCUM `min` or `h`): length of one bookable slot; 30 minutes when absent.
 */
export const EXT = {
  verificationStatus: 'http://medivoy.example/fhir/StructureDefinition/verification-status',
  verificationReason: 'http://medivoy.example/fhir/StructureDefinition/verification-reason',
  consultationFee: 'http://medivoy.example/fhir/StructureDefinition/consultation-fee',
  slotLength: 'http://medivoy.example/fhir/StructureDefinition/slot-length',
  /** HL7 core extension (R4): an IANA time zone name such as Europe/Berlin. */
  timezone: 'http://hl7.org/fhir/StructureDefinition/timezone',
} as const;

/** A practitioner's licence: an identifier of type MD (v2-0203 "Medical License number") whose system is the issuer. */
export const LICENCE_TYPE = { system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MD' } as const;

export type VerificationStatus = 'pending' | 'verified' | 'rejected';

const DEFAULT_SLOT_MINUTES = 30;

export function verificationStatus(role: PractitionerRole): VerificationStatus | undefined {
  return role.extension?.find((e) => e.url === EXT.verificationStatus)?.valueCode as VerificationStatus | undefined;
}

/** The role with its verification extensions replaced (a reason only when given). */
export function withVerification(role: PractitionerRole, status: VerificationStatus, reason?: string): PractitionerRole {
  const others = (role.extension ?? []).filter((e) => e.url !== EXT.verificationStatus && e.url !== EXT.verificationReason);
  const ext: Extension[] = [{ url: EXT.verificationStatus, valueCode: status }, ...(reason ? [{ url: EXT.verificationReason, valueString: reason }] : [])];
  return { ...role, extension: [...others, ...ext] };
}

/** The verification extensions of `from` copied onto `to` (a practitioner may not change them). */
export function keepVerification(to: PractitionerRole, from: PractitionerRole): PractitionerRole {
  const own = (to.extension ?? []).filter((e) => e.url !== EXT.verificationStatus && e.url !== EXT.verificationReason);
  const kept = (from.extension ?? []).filter((e) => e.url === EXT.verificationStatus || e.url === EXT.verificationReason);
  return { ...to, extension: [...own, ...kept] };
}

/** Active and verified (or created by an administrator, without the extension): bookable, so it gets slots. */
export function isBookable(role: PractitionerRole): boolean {
  const status = verificationStatus(role);
  return role.active === true && (status === undefined || status === 'verified');
}

/** Slot length in minutes from the slot-length extension. */
export function slotMinutes(role: PractitionerRole): number {
  const d = role.extension?.find((e) => e.url === EXT.slotLength)?.valueDuration;
  if (!d?.value) return DEFAULT_SLOT_MINUTES;
  const minutes = d.code === 'h' || d.unit === 'h' ? d.value * 60 : d.value;
  return minutes >= 5 && minutes <= 24 * 60 ? Math.round(minutes) : DEFAULT_SLOT_MINUTES;
}

export function timezoneOf(resource: { extension?: Extension[] } | undefined): string | undefined {
  return resource?.extension?.find((e) => e.url === EXT.timezone)?.valueCode;
}

export function licencesOf(identifiers: Identifier[] | undefined): { system: string; value: string }[] {
  return (identifiers ?? [])
    .filter((i) => i.system && i.value && i.type?.coding?.some((c) => c.system === LICENCE_TYPE.system && c.code === LICENCE_TYPE.code))
    .map((i) => ({ system: i.system!, value: i.value! }));
}
