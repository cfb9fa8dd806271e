import { errors } from '../fhir/outcomes.js';
import { patientCompartment } from '../fhir/search/compartment.js';
import { SEP, tokenQueryKey, type Indexer } from '../fhir/search/index-entry.js';
import type { SearchRestriction } from '../fhir/search/engine.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { LinkCache } from './link-cache.js';
import type { Permission, ResourceScope } from './smart-scopes.js';
import { payorReach } from './payor-binding.js';

/** The most relations of one kind a list of linked patients is built from. */
const LIST_LIMIT = 5000;
/** How far before a kept list was loaded later searches look for new relations (commit lag, clock skew). */
const LIST_MARGIN_MS = 10_000;

export type AccountKind = 'patient' | 'practitioner' | 'hospital-admin' | 'system-admin';

/** Who is asking, from a validated access token. */
export interface AccessContext {
  clientId: string;
  /** The signed-in account, absent for backend services. */
  accountId?: string;
  scopes: ResourceScope[];
  /** Every scope granted, context scopes included (e.g. `metrics`), as the token carries them. */
  granted?: string[];
  /** Launch context patient id (`patient/` scopes act on its compartment). */
  patient?: string;
  /** The signed-in user (`Patient/…`, `Practitioner/…`), absent for backend services. */
  fhirUser?: string;
  role?: AccountKind;
  organization?: string;
  /** Backend clients registered for an insurer: the payor `Organization/…` their system/ scopes are confined to. */
  payor?: string;
}

/**
 * A scope's reach: undefined patients = not confined to compartments; `linked` = the patients the account is
 * linked to (a practitioner's, a hospital administrator's), checked one patient at a time for single resources
 * and listed only when a search needs the whole set.
 */
interface Reach {
  patients?: string[] | 'linked';
  params: [string, string][];
  /** Writes to types outside the Patient compartment need the resource to reference one of these. */
  writeAnchors?: string[];
}

/**
 * SMART scopes → what a request may touch. `patient/` scopes confine everything to the launch patient's
 * compartment; `user/` scopes follow the account's role (a practitioner reaches the patients they have
 * appointments or care relations with, a hospital administrator their Organization's patients, a system
 * administrator everything); `system/` scopes are what the client was registered for. Scopes add up.
 * Resource types outside the R4 Patient compartment definition (Practitioner, Organization, Slot…) are not
 * patient data: any scope on them may read them; writes follow the role.
 */
export class AccessPolicy {
  private linked?: Promise<string[]>;
  private readonly linkChecks = new Map<string, Promise<boolean>>();

  constructor(
    readonly access: AccessContext,
    private readonly repo: FhirRepository,
    private readonly indexer: Indexer,
    /** Links found by earlier requests of the same account (see LinkCache); none: checked on every request. */
    private readonly links?: LinkCache,
  ) {}

  /** The scopes that allow `permission` on `type`, or a 403 naming what is missing. */
  scopesFor(type: string, permission: Permission): ResourceScope[] {
    const found = this.access.scopes.filter((s) => (s.type === '*' || s.type === type) && s.permissions.has(permission));
    if (!found.length) {
      const verb = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' }[permission];
      throw errors.forbidden(`The access token's scopes do not allow to ${verb} ${type} (e.g. ${this.contextHint()}/${type}.${permission})`);
    }
    return found;
  }

  /**
   * How far a search may reach, as a restriction the search engine ANDs with the query. `pinned`: patients
   * the query itself confines every match to (see pinnedPatients); when the account is linked to all of them,
   * they are the restriction, which gives the same matches without listing every linked patient.
   */
  async searchRestriction(type: string, pinned?: string[]): Promise<SearchRestriction | undefined> {
    const reaches = await Promise.all(this.scopesFor(type, 's').map((s) => this.reach(s, type)));
    if (reaches.some((r) => !r.patients && !r.params.length)) return undefined;
    const linked = async (): Promise<string[]> => {
      // A query pinned to a few patients, all linked to the account: they are the restriction.
      if (pinned?.length && pinned.length <= 10 && !this.linked) {
        if ((await Promise.all(pinned.map((p) => this.isLinked(p)))).every(Boolean)) return pinned;
      }
      return this.linkedPatients();
    };
    const lists = await Promise.all(reaches.map((r) => (r.patients === 'linked' ? linked() : r.patients)));
    // A union of restrictions: the patients of all of them; criteria only when every scope has the same.
    const patients = lists.some((l) => !l) ? undefined : [...new Set(lists.flatMap((l) => l!))];
    const first = JSON.stringify(reaches[0]!.params);
    const params = reaches.every((r) => JSON.stringify(r.params) === first) ? reaches[0]!.params : [];
    return { patients, params };
  }

  /** Whether a stored resource may be read (or written, deleted) under `permission`. */
  async permits(type: string, id: string, resource: Record<string, unknown>, permission: Permission): Promise<boolean> {
    for (const scope of this.scopesFor(type, permission)) {
      const reach = await this.reach(scope, type);
      if (await this.within(reach, type, id, resource, permission)) return true;
    }
    return false;
  }

  async require(type: string, id: string, resource: Record<string, unknown>, permission: Permission): Promise<void> {
    if (!(await this.permits(type, id, resource, permission))) {
      throw permission === 'r' ? errors.notFound(`${type}/${id} is not known`) : errors.forbidden(`The access token does not allow this on ${type}/${id}`);
    }
  }

  /** History spanning many resources cannot be filtered per patient without leaking counts. */
  requireUnconfined(type: string | undefined): void {
    const scopes = type ? this.scopesFor(type, 's') : this.access.scopes.filter((s) => s.type === '*' && s.permissions.has('s'));
    const free = !this.access.payor && scopes.some((s) => !s.query.length && (s.context === 'system' || (s.context === 'user' && this.access.role === 'system-admin')));
    if (!free) throw errors.forbidden(`History across ${type ?? 'all types'} needs system/ or administrator access; use instance history or search instead`);
  }

  private contextHint(): string {
    return this.access.patient ? 'patient' : this.access.fhirUser ? 'user' : 'system';
  }

  private async reach(scope: ResourceScope, type: string): Promise<Reach> {
    const params = scope.query;
    if (scope.context === 'system') return this.access.payor ? payorReach(this.access.payor, type, params) : { params };
    if (scope.context === 'patient') {
      if (!this.access.patient) throw errors.forbidden('patient/ scopes need a patient in the launch context');
      return { patients: [this.access.patient], params, writeAnchors: [`Patient/${this.access.patient}`] };
    }
    switch (this.access.role) {
      case 'system-admin':
        return { params };
      case 'patient': {
        const own = this.access.fhirUser?.startsWith('Patient/') ? this.access.fhirUser.slice(8) : undefined;
        return { patients: own ? [own] : [], params, writeAnchors: own ? [`Patient/${own}`] : [] };
      }
      case 'practitioner':
      case 'hospital-admin':
        return { patients: 'linked', params, writeAnchors: [this.access.fhirUser, this.access.organization].filter((x): x is string => !!x) };
      default:
        void type;
        return { patients: [], params, writeAnchors: [] };
    }
  }

  /**
   * Patients a practitioner has appointments or care relations with; a hospital administrator's organization's
   * patients and those booked there. Within the link cache's lifetime the list loaded last is reused, and
   * only the relations written since (less a margin) are looked up again: a link made a moment ago counts at
   * once, one removed counts for at most that lifetime, as for single patients.
   */
  private linkedPatients(): Promise<string[]> {
    this.linked ??= (async () => {
      const kept = this.links?.list(this.accountKey);
      if (kept) return [...new Set([...kept.ids, ...(await this.loadLinkedPatients(kept.since)).ids])];
      return this.loadList();
    })();
    return this.linked;
  }

  /** Loads the account's whole list and keeps it in `links` (when it was not cut at the query limit). */
  private async loadList(): Promise<string[]> {
    const account = this.accountKey;
    // A relation whose write took its lastUpdated before this load started but committed after it (or came
    // from a server whose clock is behind) is found by the next search as long as it is within the margin.
    const since = new Date(Date.now() - LIST_MARGIN_MS);
    const { ids, complete } = await this.loadLinkedPatients();
    if (complete) this.links?.putList(account, ids, since);
    return ids;
  }

  private async loadLinkedPatients(since?: Date): Promise<{ ids: string[]; complete: boolean }> {
    const ids = new Set<string>();
    const add = (ref: unknown) => {
      if (typeof ref === 'string' && ref.startsWith('Patient/')) ids.add(ref.slice(8));
    };
    const who = this.access.fhirUser;
    const queries: [string, string][] = [];
    if (this.access.role === 'practitioner' && who) {
      queries.push(['Patient', `general-practitioner=${who}`], ['Appointment', `practitioner=${who}`], ['CareTeam', `participant=${who}`], ['Encounter', `practitioner=${who}`]);
    }
    const org = this.access.organization;
    if (org) queries.push(['Patient', `organization=${org}`]);
    // A hospital administrator also manages the patients booked with their organization's practitioner roles.
    if (this.access.role === 'hospital-admin' && org) queries.push(['Appointment', `actor:PractitionerRole.organization=${org}`]);
    let complete = true;
    const changed = since ? `&_lastUpdated=gt${since.toISOString()}` : '';
    // Independent queries, run together.
    const results = await Promise.all(queries.map(([type, criteria]) => this.repo.findByCriteria(type, criteria + changed, LIST_LIMIT)));
    for (const [i, found] of results.entries()) {
      const type = queries[i]![0];
      if (found.length >= LIST_LIMIT) complete = false;
      for (const v of found) {
        const r = JSON.parse(v.json!) as Record<string, any>;
        if (type === 'Patient') ids.add(v.id);
        add(r.subject?.reference);
        for (const p of r.participant ?? []) add(p.actor?.reference);
      }
    }
    return { ids: [...ids], complete };
  }

  /** What LinkCache keys of this account start with (the patient id follows). */
  private get accountKey(): string {
    return `${this.access.role ?? ''}|${this.access.fhirUser ?? ''}|${this.access.organization ?? ''}|`;
  }

  /**
   * The account's whole panel, loaded in the background into `links` (see LinkCache.missed). Best effort: if
   * it fails, each patient is still checked on its own as before, so the failure changes no answer.
   */
  private loadPanel(): void {
    this.loadList().catch(() => undefined);
  }

  /**
   * Whether one patient is linked to the account, by the same relations as linkedPatients() but with the
   * patient as the narrow side of each query (a handful of documents instead of all of a busy practitioner's
   * appointments). Memoized for the request; the full list is used instead when a search already loaded it.
   * A link found is remembered across requests in `links` for a few seconds (a new link is seen at once, a
   * removed one after at most the cache's lifetime, as with the account behind a cached token); an account
   * that keeps missing gets its whole panel loaded there.
   */
  private isLinked(pid: string): Promise<boolean> {
    let check = this.linkChecks.get(pid);
    if (!check) {
      const key = this.accountKey + pid;
      check = (async () => {
        if (this.links?.has(key)) return true;
        if (this.links?.missed(this.accountKey)) this.loadPanel();
        const linked = await this.checkLink(pid);
        if (linked) this.links?.add(key);
        return linked;
      })();
      this.linkChecks.set(pid, check);
    }
    return check;
  }

  private async checkLink(pid: string): Promise<boolean> {
    if (this.linked) return (await this.linked).includes(pid);
    const patient = `Patient/${encodeURIComponent(pid)}`;
    const who = this.access.fhirUser;
    const org = this.access.organization;
    const queries: [string, string][] = [];
    if (this.access.role === 'practitioner' && who) {
      queries.push(['Appointment', `patient=${patient}&practitioner=${who}`], ['Encounter', `patient=${patient}&practitioner=${who}`], ['CareTeam', `patient=${patient}&participant=${who}`], ['Patient', `_id=${encodeURIComponent(pid)}&general-practitioner=${who}`]);
    }
    if (org) queries.push(['Patient', `_id=${encodeURIComponent(pid)}&organization=${org}`]);
    if (this.access.role === 'hospital-admin' && org) queries.push(['Appointment', `patient=${patient}&actor:PractitionerRole.organization=${org}`]);
    for (const [type, criteria] of queries) {
      if ((await this.repo.findByCriteria(type, criteria, 1)).length) return true;
    }
    return false;
  }

  private async within(reach: Reach, type: string, id: string, resource: Record<string, unknown>, permission: Permission): Promise<boolean> {
    // The resource's search index (every parameter's FHIRPath evaluated) only when a check needs it: a read of
    // a Patient, or any read under an unconfined scope, does not.
    let index: string[] | undefined;
    const tokens = () => (index ??= this.indexer(resource).tk);
    if (reach.params.length && !matchesByIndex(tokens(), reach.params)) return false;
    if (!reach.patients) return true;
    const fixed = reach.patients;
    const member = fixed === 'linked' ? (pid: string) => this.isLinked(pid) : async (pid: string) => fixed.includes(pid);
    const params = patientCompartment().get(type);
    if (type === 'Patient') return member(id);
    if (params) {
      const prefixes = params.map((p) => `${p}${SEP}Patient/`);
      const owners = new Set(tokens().flatMap((k) => prefixes.filter((p) => k.startsWith(p)).map((p) => k.slice(p.length))));
      for (const pid of owners) if (await member(pid)) return true;
      return false;
    }
    // Not patient data: readable by anyone with a scope on it; writable only where it references the user.
    if (permission === 'r' || permission === 's') return true;
    const anchors = reach.writeAnchors ?? [];
    return anchors.some((a) => `${type}/${id}` === a || tokens().some((k) => k.endsWith(`${SEP}${a}`)));
  }
}

/**
 * The patients a search confines every match to by its own criteria: a compartment search, `_id` of a
 * Patient search, or a compartment parameter of the type (`patient`, `subject`…) given as `Patient/id` (a bare
 * id only for `patient`). Undefined when the query does not pin them (chains, modifiers, other forms).
 */
export function pinnedPatients(type: string, params: [string, string][], compartment?: { type: string; id: string }): string[] | undefined {
  if (compartment?.type === 'Patient') return [compartment.id];
  // `patient` of a compartment type: its matches lie in that patient's compartment in R4; were one not, the
  // pinned restriction would leave it out, never let in more than the full list of linked patients would.
  const members = patientCompartment().get(type);
  const names = type === 'Patient' ? ['_id'] : members ? [...members, 'patient'] : [];
  for (const [name, value] of params) {
    if (!names.includes(name)) continue;
    const ids = value.split(',').map((v) => (type === 'Patient' || name === 'patient' ? /^(?:Patient\/)?([A-Za-z0-9\-.]{1,64})$/ : /^Patient\/([A-Za-z0-9\-.]{1,64})$/).exec(v)?.[1]);
    if (ids.length && ids.every((id): id is string => !!id)) return ids;
  }
  return undefined;
}

/** Granular-scope criteria checked against a resource's index (token and reference criteria). */
function matchesByIndex(tk: string[], params: [string, string][]): boolean {
  return params.every(([name, value]) => value.split(',').some((v) => tk.includes(tokenQueryKey(name, v)) || tk.includes(`${name}${SEP}${v}`) || (BARE_ID.test(v) && tk.some((k) => isReferenceTo(k, name, v)))));
}

const BARE_ID = /^[A-Za-z0-9\-.]{1,64}$/;
/**
 * Whether index key `k` of parameter `name` is a reference `Type/id` to `id` of any type: a bare id in a scope's
 * criteria, which a parameter with one target type indexes only with its type (search/indexer.ts).
 */
function isReferenceTo(k: string, name: string, id: string): boolean {
  if (!k.startsWith(`${name}${SEP}`)) return false;
  const ref = k.slice(name.length + SEP.length);
  const slash = ref.indexOf('/');
  return slash > 0 && ref.slice(slash + 1) === id && /^[A-Z][A-Za-z]+$/.test(ref.slice(0, slash));
}
