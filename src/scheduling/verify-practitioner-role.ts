import type { Organization, Practitioner, PractitionerRole } from '@medplum/fhirtypes';
import { errors, isOperationOutcomeError } from '../fhir/outcomes.js';
import type { BusinessOperation, OperationContext, OperationInput, OperationResult } from '../fhir/operations/registry.js';
import { parseResource } from '../fhir/storage/types.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { personNames } from '../accounts/person-resources.js';
import { schedulingPorts } from './practitioner-writes.js';
import { verificationStatus, withVerification } from './practitioner-extensions.js';
import { administers, operationParams } from './role-administration.js';
import { verificationResultEmail } from '../notifications/templates.js';

/**
 * `POST PractitionerRole/[id]/$verify` (Parameters `decision` = approve | reject, `reason`): an administrator
 * of the role's organization (or a system administrator) decides on a pending role. Approval makes it active
 * and `verified` (bookable, slots are generated); rejection keeps it inactive with the reason. 403 for anyone
 * else, 409 when the role is not pending. The practitioner is e-mailed the result once the update committed.
 */
export const verifyPractitionerRole: BusinessOperation = {
  name: 'verify', levels: ['instance'], resourceTypes: ['PractitionerRole'], methods: ['POST'], affectsState: true,
  description: "An administrator of the role's organization approves or rejects a pending PractitionerRole (approval makes it bookable).",
  parameters: [
    { name: 'decision', use: 'in', min: 1, max: '1', type: 'code', documentation: 'approve | reject' },
    { name: 'reason', use: 'in', min: 0, max: '1', type: 'string', documentation: 'Required for a rejection' },
    { name: 'return', use: 'out', min: 1, max: '1', type: 'PractitionerRole' },
  ],
  handler: (input, ctx) => verify(input, ctx),
};

async function verify(input: OperationInput, ctx: OperationContext): Promise<OperationResult> {
  const id = input.target.id;
  const p = operationParams(input);
  const decision = p.get('decision');
  if (decision !== 'approve' && decision !== 'reject') throw errors.badRequest("$verify needs decision 'approve' or 'reject'");
  const reason = p.get('reason')?.trim() || undefined;
  if (decision === 'reject' && !reason) throw errors.badRequest('A rejection needs a reason');

  const current = await ctx.repo.read('PractitionerRole', id!);
  const role = parseResource(current) as PractitionerRole;
  if (!administers(ctx.access, role)) throw errors.forbidden(`Only an administrator of ${role.organization?.reference ?? "the role's organization"} or a system administrator may verify this role`);
  if (verificationStatus(role) !== 'pending') throw errors.conflict(`PractitionerRole/${id} is not pending verification (${verificationStatus(role) ?? 'no verification status'})`);

  const decided = withVerification({ ...role, active: decision === 'approve' }, decision === 'approve' ? 'verified' : 'rejected', reason);
  let result;
  try {
    // Pinned to the pending version read above: of two concurrent decisions only one applies.
    result = await ctx.repo.update(decided, { ifMatch: current.versionId });
  } catch (err) {
    if (isOperationOutcomeError(err) && err.status === 412) throw errors.conflict(`PractitionerRole/${id} was decided or changed meanwhile; read it again`);
    throw err;
  }
  await notifyPractitioner(ctx.repo, role, decision === 'approve', reason);
  return { status: 200, resource: { json: result.version.json! } };
}

/** E-mails the practitioner at the address of their Practitioner resource (registration puts the account's there). */
async function notifyPractitioner(repo: FhirRepository, role: PractitionerRole, approved: boolean, reason: string | undefined): Promise<void> {
  const ports = schedulingPorts(repo);
  const ref = role.practitioner?.reference;
  if (!ref?.startsWith('Practitioner/')) return;
  const practitioner = parseResource(await ports.system.read('Practitioner', ref.slice('Practitioner/'.length))) as Practitioner;
  const email = practitioner.telecom?.find((t) => t.system === 'email' && t.value)?.value;
  if (!email) return;
  const orgRef = role.organization?.reference;
  let organization: string | undefined;
  if (orgRef?.startsWith('Organization/')) {
    try {
      organization = (parseResource(await ports.system.read('Organization', orgRef.slice('Organization/'.length))) as Organization).name;
    } catch {
      // A missing organization only makes the message less specific.
    }
  }
  const specialty = role.specialty?.[0]?.text ?? role.specialty?.[0]?.coding?.[0]?.display;
  ports.notify(email, verificationResultEmail({ name: personNames(practitioner).given, approved, organization, specialty, reason }));
}
