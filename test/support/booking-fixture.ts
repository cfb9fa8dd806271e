import { http } from './server.js';

const PASSWORD = 'Blue-Harbor-72!';
const iso = (minutesFromNow: number) => new Date(Math.floor(Date.now() / 60000) * 60000 + minutesFromNow * 60000).toISOString();

/** A practitioner role with a schedule and `count` free half-hour slots two days ahead; returns the slot ids. */
export async function bookableSlots(base: string, tag: string, count: number): Promise<string[]> {
  const entry: unknown[] = [
    { resource: { resourceType: 'Practitioner', id: `pr-${tag}`, name: [{ family: 'House', given: ['Greg'] }] }, request: { method: 'PUT', url: `Practitioner/pr-${tag}` } },
    { resource: { resourceType: 'PractitionerRole', id: `role-${tag}`, active: true, practitioner: { reference: `Practitioner/pr-${tag}` } }, request: { method: 'PUT', url: `PractitionerRole/role-${tag}` } },
    { resource: { resourceType: 'Schedule', id: `sch-${tag}`, actor: [{ reference: `PractitionerRole/role-${tag}` }] }, request: { method: 'PUT', url: `Schedule/sch-${tag}` } },
  ];
  const slots: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${tag}-s${i}`;
    slots.push(id);
    entry.push({ resource: { resourceType: 'Slot', id, schedule: { reference: `Schedule/sch-${tag}` }, status: 'free', start: iso(2 * 24 * 60 + i * 30), end: iso(2 * 24 * 60 + i * 30 + 30) }, request: { method: 'PUT', url: `Slot/${id}` } });
  }
  const res = await http('POST', base, { body: { resourceType: 'Bundle', type: 'transaction', entry } });
  if (res.status !== 200) throw new Error(`setting up slots failed: ${res.status} ${res.text.slice(0, 300)}`);
  return slots;
}

/** Registers a patient account (its Patient has the e-mail address); returns the Patient reference. */
export async function registeredPatient(url: string, email: string): Promise<string> {
  const res = await http('POST', `${url}/auth/register`, { body: { email, password: PASSWORD, givenName: 'Rita', familyName: 'Booker' }, headers: { 'content-type': 'application/json' }, token: false });
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${res.text.slice(0, 300)}`);
  return res.body.fhirUser as string;
}

export const params = (p: Record<string, string>) => ({ resourceType: 'Parameters', parameter: Object.entries(p).map(([name, v]) => ({ name, valueString: v })) });
