import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface Received {
  to: string[];
  subject: string;
  body: string;
}

/**
 * A real SMTP server on a random local port (or `opts.port`, to start one again where a stopped one was) that
 * keeps every message (quoted-printable decoded). While `opts.hold()` is true, a message is accepted only once the test
 * calls the release function that `onHeld` receives (the sender waits for the answer meanwhile).
 */
export async function startSmtp(opts: { port?: number; hold?: () => boolean; onHeld?: (release: () => void) => void } = {}): Promise<{ inbox: Received[]; url: string; port: number; close: () => Promise<void> }> {
  const inbox: Received[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const body = raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
        // Long header lines are folded (CRLF + white space); unfolding removes the line break only (RFC 5322).
        const headers = raw.split(/\r?\n\r?\n/, 1)[0]!.replace(/\r?\n(?=[ \t])/g, '');
        const accept = () => {
          inbox.push({ to: session.envelope.rcptTo.map((r) => r.address), subject: /^Subject: (.*)$/m.exec(headers)?.[1] ?? '', body });
          callback();
        };
        if (opts.hold?.()) opts.onHeld?.(accept);
        else accept();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', resolve);
  });
  const port = (server.server.address() as AddressInfo).port;
  return { inbox, url: `smtp://127.0.0.1:${port}`, port, close: () => new Promise<void>((r) => server.close(() => r())) };
}
