import { errors } from '../fhir/outcomes.js';
import { patientCompartment } from '../fhir/search/compartment.js';
import { SEP, tokenQueryKey, type Indexer } from '../fhir/search/index-entry.js';
import type { SearchRestriction } from '../fhir/search/engine.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { Permission, ResourceScope } from './smart-scopes.js';

export type AccountKind = 'patient' | 'practitioner' | 'hospital-admin' | 'system-admin';

/** Who is asking, from a validated access token. */
export interface AccessContext {
  clientId: string;
  /** The signed-in account, absent for backend services. */
  accountId?: string;
  scopes: ResourceScope[];
  /** Launch context patient id (`patient/` scopes act on its compartment). */
  patient?: string;
  /** The signed-in user (`Patient/…`, `Practitioner/…`), absent for backend services. */
  fhirUser?: string;
  role?: AccountKind;
  organization?: string;
}

/** A scope's reach: undefined patients = not confined to compartments. */
interface Reach {
  patients?: string[];
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

  constructor(
    readonly access: AccessContext,
    private readonly repo: FhirRepository,
    private readonly indexer: Indexer,
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

  /** How far a search may reach, as a restriction the search engine ANDs with the query. */
  async searchRestriction(type: string): Promise<SearchRestriction | undefined> {
    const reaches = await Promise.all(this.scopesFor(type, 's').map((s) => this.reach(s, type)));
    if (reaches.some((r) => !r.patients && !r.params.length)) return undefined;
    // A union of restrictions: the patients of all of them; criteria only when every scope has the same.
    const patients = reaches.some((r) => !r.patients) ? undefined : [...new Set(reaches.flatMap((r) => r.patients!))];
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
    const free = scopes.some((s) => !s.query.length && (s.context === 'system' || (s.context === 'user' && this.access.role === 'system-admin')));
    if (!free) throw errors.forbidden(`History across ${type ?? 'all types'} needs system/ or administrator access; use instance history or search instead`);
  }

  private contextHint(): string {
    return this.access.patient ? 'patient' : this.access.fhirUser ? 'user' : 'system';
  }

  private async reach(scope: ResourceScope, type: string): Promise<Reach> {
    const params = scope.query;
    if (scope.context === 'system') return { params };
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
        return { patients: await this.linkedPatients(), params, writeAnchors: [this.access.fhirUser, this.access.organization].filter((x): x is string => !!x) };
      default:
        void type;
        return { patients: [], params, writeAnchors: [] };
    }
  }

  /** Patients a practitioner has appointments or care relations with; a hospital administrator's organization's patients and those booked there. */
  private linkedPatients(): Promise<string[]> {
    this.linked ??= (async () => {
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
      for (const [type, criteria] of queries) {
        for (const v of await this.repo.findByCriteria(type, criteria, 5000)) {
          const r = JSON.parse(v.json!) as Record<string, any>;
          if (type === 'Patient') ids.add(v.id);
          add(r.subject?.reference);
          for (const p of r.participant ?? []) add(p.actor?.reference);
        }
      }
      return [...ids];
    })();
    return this.linked;
  }

  private async within(reach: Reach, type: string, id: string, resource: Record<string, unknown>, permission: Permission): Promise<boolean> {
    const tk = this.indexer(resource).tk;
    if (reach.params.length && !matchesByIndex(tk, reach.params)) return false;
    if (!reach.patients) return true;
    const params = patientCompartment().get(type);
    if (type === 'Patient') return reach.patients.includes(id);
    if (params) return params.some((p) => reach.patients!.some((pid) => tk.includes(`${p}${SEP}Patient/${pid}`)));
    // Not patient data: readable by anyone with a scope on it; writable only where it references the user.
    if (permission === 'r' || permission === 's') return true;
    const anchors = reach.writeAnchors ?? [];
    return anchors.some((a) => `${type}/${id}` === a || tk.some((k) => k.endsWith(`${SEP}${a}`)));
  }
}

/** Granular-scope criteria checked against a resource's index (token and reference criteria). */
function matchesByIndex(tk: string[], params: [string, string][]): boolean {
  return params.every(([name, value]) => value.split(',').some((v) => tk.includes(tokenQueryKey(name, v)) || tk.includes(`${name}${SEP}${v}`)));
}
