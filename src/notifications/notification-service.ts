import type { Appointment, Communication, ContactPoint, HumanName, Resource } from '@medplum/fhirtypes';
import type { Logger } from '../infra/logger.js';
import type { Mailer } from '../infra/mailer.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { appointmentEmail, appointmentLines, type AppointmentMailKind } from './appointment-templates.js';
import type { Channel, NotificationStore } from './notification-store.js';
import type { RenderedEmail } from './templates.js';

/** SMS provider port. None is wired yet: messages for this channel are reported `unavailable`, not faked. */
export interface SmsGateway {
  send(to: string, text: string): Promise<void>;
}
/** Push provider port (device tokens, FCM/APNs). None is wired yet, like SMS. */
export interface PushGateway {
  send(recipient: string, title: string, body: string): Promise<void>;
}

export interface AppointmentNotice {
  kind: AppointmentMailKind;
  appointment: Appointment;
  /** Tells apart notices of one kind for one appointment (a reminder's offset and start); part of the dedupe key. */
  occasion: string;
  /** Reminders: "2 hours". */
  lead?: string;
}

export interface Delivery {
  recipient: string;
  channel: Channel;
  status: 'sent' | 'already-sent' | 'off' | 'no-address' | 'unavailable';
}

export const NOTIFICATION_SYSTEM = 'urn:medivoy:notification';
const TIMEZONE_URL = 'http://hl7.org/fhir/StructureDefinition/timezone';

const nameOf = (r: Resource | undefined) => {
  const n = (r as { name?: HumanName[] } | undefined)?.name?.[0];
  return n ? [n.prefix?.[0], n.given?.[0], n.family].filter(Boolean).join(' ') || undefined : undefined;
};

/**
 * Sends appointment notices to the patients of an Appointment on the channels each chose: e-mail (mailer),
 * in-app (a Communication the patient app can search), SMS and push (ports without a provider). Every
 * delivery has a key, so a retried job never sends twice: e-mails through the ledger, Communications
 * through a conditional create on their identifier. A failing channel throws after the others were tried,
 * so the job is retried and only the missing deliveries go out.
 */
export class NotificationService {
  private warned = new Set<Channel>();

  constructor(
    private readonly deps: { repo: FhirRepository; mailer: Mailer; store: NotificationStore; logger: Logger; sms?: SmsGateway; push?: PushGateway },
  ) {}

  async notifyAppointment(notice: AppointmentNotice): Promise<Delivery[]> {
    const a = notice.appointment;
    const refs = (a.participant ?? []).map((p) => p.actor?.reference).filter((r): r is string => !!r);
    const practitioner = await this.readOptional(refs.find((r) => r.startsWith('Practitioner/')));
    const timeZone = await this.zoneOf(refs);
    const out: Delivery[] = [];
    const failures: unknown[] = [];
    for (const recipient of refs.filter((r) => r.startsWith('Patient/'))) {
      const patient = await this.readOptional(recipient);
      const prefs = await this.deps.store.forRecipient(recipient);
      const data = {
        patientName: nameOf(patient), practitionerName: nameOf(practitioner), start: a.start!, timeZone, description: a.description, lead: notice.lead,
        reason: a.cancelationReason?.text ?? a.cancelationReason?.coding?.[0]?.display, reference: a.identifier?.[0]?.value,
      };
      const key = (channel: Channel) => [notice.kind, `Appointment/${a.id}`, notice.occasion, recipient, channel].join('|');
      const attempt = async (channel: Channel, fn: () => Promise<Delivery['status']>) => {
        if (!prefs[channel]) return out.push({ recipient, channel, status: 'off' });
        try {
          out.push({ recipient, channel, status: await fn() });
        } catch (err) {
          failures.push(err);
          this.deps.logger.warn({ err, recipient, channel, kind: notice.kind }, 'notification not delivered; the job will retry');
        }
      };
      await attempt('email', async () => {
        const to = (patient as { telecom?: ContactPoint[] } | undefined)?.telecom?.find((t) => t.system === 'email')?.value;
        if (!to) return 'no-address';
        if (!(await this.deps.store.claim(key('email')))) return 'already-sent';
        try {
          await this.deps.mailer.send({ to, ...appointmentEmail(notice.kind, data) });
        } catch (err) {
          await this.deps.store.release(key('email'));
          throw err;
        }
        await this.deps.store.sent(key('email'));
        return 'sent';
      });
      await attempt('in-app', async () => {
        const { subject, lines } = appointmentLines(notice.kind, data);
        const identifier = key('in-app');
        const communication: Communication = {
          resourceType: 'Communication', status: 'completed', identifier: [{ system: NOTIFICATION_SYSTEM, value: identifier }],
          category: [{ coding: [{ system: 'http://medivoy.example/fhir/CodeSystem/notification-kind', code: notice.kind }] }],
          subject: { reference: recipient }, recipient: [{ reference: recipient }], about: [{ reference: `Appointment/${a.id}` }],
          sent: new Date().toISOString(), payload: [{ contentString: [subject, ...lines.slice(1)].join('\n') }],
        };
        const res = await this.deps.repo.create(communication, { ifNoneExist: `identifier=${NOTIFICATION_SYSTEM}|${encodeURIComponent(identifier)}` });
        return res.created ? 'sent' : 'already-sent';
      });
      const text = appointmentLines(notice.kind, data);
      await attempt('sms', async () => {
        const phone = (patient as { telecom?: ContactPoint[] } | undefined)?.telecom?.find((t) => t.system === 'phone' || t.system === 'sms')?.value;
        if (!this.deps.sms) return this.unavailable('sms');
        if (!phone) return 'no-address';
        if (!(await this.deps.store.claim(key('sms')))) return 'already-sent';
        await this.deps.sms.send(phone, text.subject).catch(async (err) => {
          await this.deps.store.release(key('sms'));
          throw err;
        });
        await this.deps.store.sent(key('sms'));
        return 'sent';
      });
      await attempt('push', async () => {
        if (!this.deps.push) return this.unavailable('push');
        if (!(await this.deps.store.claim(key('push')))) return 'already-sent';
        await this.deps.push.send(recipient, text.subject, text.lines.slice(1).join(' ')).catch(async (err) => {
          await this.deps.store.release(key('push'));
          throw err;
        });
        await this.deps.store.sent(key('push'));
        return 'sent';
      });
    }
    if (failures.length) throw failures[0];
    return out;
  }

  /**
   * One e-mail to a patient (or practitioner) under a delivery key, at most once ever: the ledger claim is
   * taken before sending and released when sending fails, so a retried job sends what is missing and a
   * second trigger (the same key) sends nothing. Honours the recipient's e-mail preference.
   */
  async emailOnce(recipient: string, key: string, mail: (person: Resource | undefined) => RenderedEmail | Promise<RenderedEmail>): Promise<Delivery['status']> {
    const prefs = await this.deps.store.forRecipient(recipient);
    if (!prefs.email) return 'off';
    const person = await this.readOptional(recipient);
    const to = (person as { telecom?: ContactPoint[] } | undefined)?.telecom?.find((t) => t.system === 'email')?.value;
    if (!to) return 'no-address';
    const ledgerKey = `${key}|${recipient}|email`;
    if (!(await this.deps.store.claim(ledgerKey))) return 'already-sent';
    try {
      await this.deps.mailer.send({ to, ...(await mail(person)) });
    } catch (err) {
      await this.deps.store.release(ledgerKey);
      throw err;
    }
    await this.deps.store.sent(ledgerKey);
    return 'sent';
  }

  /** A channel the user chose that has no provider: said in the log once, and reported, never faked. */
  private unavailable(channel: Channel): Delivery['status'] {
    if (!this.warned.has(channel)) this.deps.logger.warn({ channel }, `${channel} notifications have no provider configured: not sent (see README)`);
    this.warned.add(channel);
    return 'unavailable';
  }

  /**
   * The zone the appointment's time is shown in: its Location's (the timezone extension), else the Location's
   * managing Organization's, else its PractitionerRole's Organization's; UTC when none says (the text names it).
   */
  private async zoneOf(refs: string[]): Promise<string | undefined> {
    const zone = (r: Resource | undefined) =>
      (r as { extension?: { url: string; valueCode?: string }[] } | undefined)?.extension?.find((e) => e.url === TIMEZONE_URL)?.valueCode;
    const location = await this.readOptional(refs.find((r) => r.startsWith('Location/')));
    const role = await this.readOptional(refs.find((r) => r.startsWith('PractitionerRole/')));
    const orgOf = (r: Resource | undefined, field: 'managingOrganization' | 'organization') =>
      (r as Record<string, { reference?: string } | undefined> | undefined)?.[field]?.reference;
    return (
      zone(location) ??
      zone(await this.readOptional(orgOf(location, 'managingOrganization'))) ??
      zone(await this.readOptional(orgOf(role, 'organization')))
    );
  }

  private async readOptional(ref: string | undefined): Promise<Resource | undefined> {
    if (!ref) return undefined;
    const [type, id] = ref.split('/');
    try {
      return JSON.parse((await this.deps.repo.read(type!, id!)).json!) as Resource;
    } catch {
      return undefined; // a deleted practitioner must not stop the patient's reminder
    }
  }
}
