/**
 * Rollbacks of transaction Bundles (engines without transactions) that could not finish because the database
 * went away in the middle of them. Each is retried with back-off until it succeeds, so an interrupted
 * transaction is undone once the database answers again, without a restart; until then `/ready` reports
 * them. A process that dies meanwhile leaves the partial writes behind (see README, Failure behaviour).
 */
export class PendingRollbacks {
  private readonly pending = new Set<{ run: () => Promise<void> }>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly onError: (err: unknown, attempt: number) => void = () => undefined) {}

  get count(): number {
    return this.pending.size;
  }

  /** Retries `run` (idempotent, resumable) until it resolves. */
  add(run: () => Promise<void>): void {
    const entry = { run };
    this.pending.add(entry);
    const attempt = (n: number) => {
      if (this.closed) return;
      const timer = setTimeout(async () => {
        this.timers.delete(timer);
        try {
          await entry.run();
          this.pending.delete(entry);
        } catch (err) {
          this.onError(err, n);
          attempt(n + 1);
        }
      }, Math.min(250 * 2 ** Math.min(n, 3), 2000));
      this.timers.add(timer);
    };
    attempt(0);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
