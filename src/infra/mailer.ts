import nodemailer, { type Transporter } from 'nodemailer';
import type { Logger } from './logger.js';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** Files sent along (e.g. an invoice PDF). */
  attachments?: MailAttachment[];
}

export interface MailAttachment {
  filename: string;
  contentType: string;
  content: Buffer;
}

/** Outgoing e-mail port: domain code sends through it and never sees SMTP. */
export interface Mailer {
  readonly kind: 'smtp' | 'log';
  send(msg: MailMessage): Promise<void>;
  close(): Promise<void>;
}

export interface MailerOptions {
  /** smtp:// or smtps:// URL; unset: messages go to the log. */
  url?: string;
  from: string;
  logger: Logger;
  /** Whether the logging fallback may write message bodies (they carry reset tokens: never in production). */
  logBodies: boolean;
}

/**
 * Connects to SMTP_URL, or falls back to writing messages to the log (said once at start, like REDIS_URL's
 * fallback). An unreachable SMTP server is a warning, not a start-up failure: the FHIR API does not need mail.
 */
export async function initMailer(opts: MailerOptions): Promise<Mailer> {
  if (!opts.url) {
    opts.logger.warn(
      opts.logBodies
        ? 'SMTP_URL is not set: e-mails are written to the log instead of being sent'
        : 'SMTP_URL is not set: e-mails are NOT sent; only their recipient and subject are logged',
    );
    return new LogMailer(opts.logger, opts.logBodies);
  }
  const transport = nodemailer.createTransport(opts.url, { from: opts.from });
  const mailer = new SmtpMailer(transport, opts.logger);
  try {
    // Bounded: nodemailer's own connection timeout is two minutes, far too long to hold up start-up.
    await Promise.race([
      transport.verify(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no answer within 5 s')), 5000).unref()),
    ]);
    opts.logger.info({ smtp: redact(opts.url) }, 'connected to the SMTP server');
  } catch (err) {
    opts.logger.warn({ smtp: redact(opts.url), err: (err as Error).message }, 'SMTP server did not answer at start; e-mails will be retried per message');
  }
  return mailer;
}

/** The SMTP URL without its password, for logs. */
function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

class SmtpMailer implements Mailer {
  readonly kind = 'smtp' as const;
  constructor(
    private readonly transport: Transporter,
    private readonly logger: Logger,
  ) {}
  async send(msg: MailMessage): Promise<void> {
    const info = await this.transport.sendMail({ to: msg.to, subject: msg.subject, text: msg.text, html: msg.html, ...(msg.attachments?.length ? { attachments: msg.attachments } : {}) });
    this.logger.debug({ to: msg.to, subject: msg.subject, messageId: info.messageId }, 'e-mail sent');
  }
  async close(): Promise<void> {
    this.transport.close();
  }
}

class LogMailer implements Mailer {
  readonly kind = 'log' as const;
  constructor(
    private readonly logger: Logger,
    private readonly logBodies: boolean,
  ) {}
  async send(msg: MailMessage): Promise<void> {
    if (this.logBodies) this.logger.info({ to: msg.to, subject: msg.subject, text: msg.text }, 'e-mail (not sent: SMTP_URL is not set)');
    else this.logger.warn({ to: msg.to, subject: msg.subject }, 'e-mail dropped: SMTP_URL is not set');
  }
  async close(): Promise<void> {}
}
