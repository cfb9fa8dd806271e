import { http } from './server.js';

export const SD = 'https://medivoy.example/fhir/StructureDefinition';
export const FEE_URL = 'http://medivoy.example/fhir/StructureDefinition/consultation-fee';
export const PASSWORD = 'Amber-Ledger-93!';

export const iso = (minutesFromNow: number) => new Date(Math.floor(Date.now() / 60000) * 60000 + minutesFromNow * 60000).toISOString();
export const params = (p: Record<string, unknown>) => ({
  resourceType: 'Parameters',
  parameter: Object.entries(p).map(([name, v]) => (typeof v === 'number' ? { name, valueInteger: v } : { name, valueString: String(v) })),
});
export const minor = (m: any) => m?.extension?.find((e: any) => e.url === `${SD}/amount-minor-units`)?.valueInteger;
export const ext = (r: any, name: string) => r?.extension?.find((e: any) => e.url === `${SD}/${name}`);

/**
 * A clinic in one transaction: Organization `id` (extensions as given), a role with a fee (or none), its
 * schedule and `slots` free slots `${id}-s<i>` a day or more ahead, 30 minutes apart.
 */
export async function clinic(base: string, o: { id: string; orgExtensions?: unknown[]; fee?: number; currency?: string; slots: number; startMinutes?: number; practitioner?: string }) {
  const role: Record<string, unknown> = {
    resourceType: 'PractitionerRole', id: `${o.id}-role`, active: true, organization: { reference: `Organization/${o.id}` },
    ...(o.practitioner ? { practitioner: { reference: o.practitioner } } : {}),
    ...(o.fee !== undefined ? { extension: [{ url: FEE_URL, valueMoney: { value: o.fee, currency: o.currency ?? 'EUR' } }] } : {}),
  };
  const entry: unknown[] = [
    { resource: { resourceType: 'Organization', id: o.id, name: `Clinic ${o.id}`, ...(o.orgExtensions ? { extension: o.orgExtensions } : {}) }, request: { method: 'PUT', url: `Organization/${o.id}` } },
    { resource: role, request: { method: 'PUT', url: `PractitionerRole/${o.id}-role` } },
    { resource: { resourceType: 'Schedule', id: `${o.id}-sch`, actor: [{ reference: `PractitionerRole/${o.id}-role` }] }, request: { method: 'PUT', url: `Schedule/${o.id}-sch` } },
  ];
  const slots: string[] = [];
  const start = o.startMinutes ?? 2 * 24 * 60;
  for (let i = 0; i < o.slots; i++) {
    const id = `${o.id}-s${i}`;
    slots.push(`Slot/${id}`);
    entry.push({ resource: { resourceType: 'Slot', id, schedule: { reference: `Schedule/${o.id}-sch` }, status: 'free', start: iso(start + i * 30), end: iso(start + i * 30 + 30) }, request: { method: 'PUT', url: `Slot/${id}` } });
  }
  const res = await http('POST', base, { body: { resourceType: 'Bundle', type: 'transaction', entry } });
  if (res.status !== 200) throw new Error(`clinic ${o.id}: ${res.status} ${res.text.slice(0, 500)}`);
  return { org: `Organization/${o.id}`, role: `PractitionerRole/${o.id}-role`, slots };
}

/** A registered patient (account with e-mail, so invoices are mailed): their Patient reference. */
export async function registerPatient(url: string, email: string, given = 'Pat'): Promise<string> {
  const reg = await http('POST', `${url}/auth/register`, { body: { email, password: PASSWORD, givenName: given, familyName: 'Billing' }, headers: { 'content-type': 'application/json' }, token: false });
  if (reg.status !== 201) throw new Error(`register ${email}: ${reg.status} ${reg.text}`);
  return reg.body.fhirUser as string;
}

/** The invoice of an appointment (searched by its subject and found by the appointment extension). */
export async function invoiceOf(base: string, patient: string, appointmentId: string): Promise<any> {
  const res = await http('GET', `${base}/Invoice?subject=${patient}&_count=100`);
  return res.body.entry?.map((e: any) => e.resource).find((i: any) => ext(i, 'invoice-appointment')?.valueReference?.reference === `Appointment/${appointmentId}`);
}
