import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';
import { startSmtp } from './support/smtp.js';
import { bookableSlots, params, registeredPatient } from './support/booking-fixture.js';
import { NOTICE_JOB } from '../src/notifications/appointment-notices.js';
import { waitFor } from './support/wait.js';

/** The SMTP server (a local smtp-server) stopped while booking confirmations are due, then started again on its port. */
let smtp: Awaited<ReturnType<typeof startSmtp>>;
let srv: TestServer;
beforeAll(async () => {
  smtp = await startSmtp();
  srv = await startTestServer({ SMTP_URL: smtp.url, JOBS_POLL_MS: '200' }, { single: true });
}, 60_000);
afterAll(async () => {
  await srv?.close();
  await smtp?.close();
});

const until = (what: string, ok: () => Promise<boolean> | boolean) => waitFor(what, ok, 40_000);

describe('SMTP server down', () => {
  it('retries the notices in the job runner and sends each exactly once when SMTP is back', async () => {
    const tag = randomBytes(3).toString('hex');
    const slots = await bookableSlots(srv.base, tag, 3);
    const emails = slots.map((_, i) => `smtp${i}.${tag}@example.org`);
    const patients = [];
    for (const e of emails) patients.push(await registeredPatient(srv.url, e));

    await smtp.close();
    const jobs = srv.running.mongo.db.collection<{ name: string; attempt: number; status: string }>('jobs');
    for (let i = 0; i < slots.length; i++) {
      const res = await http('POST', `${srv.base}/Appointment/$book`, { body: params({ slot: `Slot/${slots[i]}`, patient: patients[i]! }) });
      expect({ status: res.status, body: res.text.slice(0, 200) }).toMatchObject({ status: 201 });
    }
    // Every confirmation fails once at least (SMTP refuses connections) and stays queued for a retry.
    await until('every notice failed once', async () => (await jobs.countDocuments({ name: NOTICE_JOB, attempt: { $gte: 1 } })) === slots.length);
    expect(await jobs.countDocuments({ name: NOTICE_JOB, status: 'failed' })).toBe(0);

    smtp = await startSmtp({ port: smtp.port });
    // Delivered on a retry; then no notice job is left (nothing more can be sent).
    await until('all notice jobs done', async () => (await jobs.countDocuments({ name: NOTICE_JOB })) === 0);
    for (const e of emails) {
      const confirmations = smtp.inbox.filter((m) => m.to.includes(e) && /is booked/.test(m.subject));
      expect({ e, confirmations: confirmations.length }).toEqual({ e, confirmations: 1 });
    }
  }, 60_000);
});
