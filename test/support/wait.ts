/**
 * Polls `probe` every `everyMs` until it answers something truthy, and returns that; after `timeoutMs` fails
 * with `what` in the message. For work the server does in the background (jobs, subscriptions, e-mails).
 */
export async function waitFor<T>(what: string, probe: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
