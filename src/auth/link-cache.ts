/**
 * Links between an account and a patient (a practitioner's appointment or care relation, a hospital
 * administrator's organization) found by earlier requests, remembered per process for `ttlMs`: checking one
 * costs up to four queries, on every read of that patient's data. Only links are remembered, never their
 * absence, so a newly booked patient is reachable at once; a link that goes away (the only appointment
 * cancelled) still counts for at most `ttlMs`, the same bound as for the account behind a cached token
 * (ACCESS_CACHE_SECONDS). A ttl of 0 turns it off.
 *
 * An account that misses several times within one lifetime (a practitioner going through their list) gets its
 * whole panel loaded once in the background (`missed` says when): the same relations listed from the
 * account's side, each link remembered as if checked one by one, so the next patients are found without a
 * query. Loading it again waits for the next lifetime and its misses. The list itself is kept for searches
 * that need all of an account's patients: they then only look for links made since it was loaded.
 */
export class LinkCache {
  private readonly until = new Map<string, number>();
  private readonly panels = new Map<string, { ends: number; misses: number; loaded: boolean }>();
  private readonly lists = new Map<string, { ids: string[]; since: Date; ends: number }>();
  private listedIds = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 50_000,
    /** Misses of one account within a lifetime after which its panel is loaded. */
    private readonly panelAfterMisses = 3,
  ) {}

  /** The most links one panel load remembers (a tenth of the cache, so one account cannot evict everyone). */
  get panelLimit(): number {
    return Math.max(1, Math.floor(this.maxEntries / 10));
  }

  has(key: string): boolean {
    const until = this.until.get(key);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.until.delete(key);
    return false;
  }

  add(key: string): void {
    if (this.ttlMs <= 0) return;
    if (this.until.size >= this.maxEntries) this.until.delete(this.until.keys().next().value!); // oldest first
    this.until.delete(key); // re-inserted last, so eviction stays oldest-first
    this.until.set(key, Date.now() + this.ttlMs);
  }

  /**
   * Records a miss of `account` (a link not remembered); true exactly once per lifetime, at the miss that
   * should start loading the account's panel.
   */
  missed(account: string): boolean {
    if (this.ttlMs <= 0) return false;
    const now = Date.now();
    let panel = this.panels.get(account);
    if (!panel || panel.ends <= now) {
      this.panels.delete(account);
      if (this.panels.size >= 10_000) this.panels.delete(this.panels.keys().next().value!);
      panel = { ends: now + this.ttlMs, misses: 0, loaded: false };
      this.panels.set(account, panel);
    }
    panel.misses++;
    if (panel.loaded || panel.misses < this.panelAfterMisses) return false;
    panel.loaded = true;
    return true;
  }

  /**
   * An account's whole list of linked patients as loaded within the lifetime, with the time from which a
   * search must still look for new links (see AccessPolicy.linkedPatients).
   */
  list(account: string): { ids: string[]; since: Date } | undefined {
    const list = this.lists.get(account);
    if (!list) return undefined;
    if (list.ends > Date.now()) return list;
    this.dropList(account);
    return undefined;
  }

  putList(account: string, ids: string[], since: Date): void {
    if (this.ttlMs <= 0) return;
    for (const id of ids.slice(0, this.panelLimit)) this.add(account + id);
    if (ids.length > this.panelLimit) return; // too long to keep: searches list it each time
    this.dropList(account);
    // The kept lists hold at most as many ids as the link cache, oldest dropped first.
    while (this.lists.size && this.listedIds + ids.length > this.maxEntries) this.dropList(this.lists.keys().next().value!);
    this.lists.set(account, { ids, since, ends: Date.now() + this.ttlMs });
    this.listedIds += ids.length;
  }

  private dropList(account: string): void {
    const list = this.lists.get(account);
    if (!list) return;
    this.lists.delete(account);
    this.listedIds -= list.ids.length;
  }

  clear(): void {
    this.until.clear();
    this.panels.clear();
    this.lists.clear();
    this.listedIds = 0;
  }
}
