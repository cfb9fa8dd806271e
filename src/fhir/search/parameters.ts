import { getSearchParameters, parseFhirPath, type FhirPathAtom } from '@medplum/core';
import type { SearchParameter } from '@medplum/fhirtypes';
import { getResourceTypes } from '../definitions.js';

export type ParamType = 'number' | 'date' | 'string' | 'token' | 'reference' | 'composite' | 'quantity' | 'uri' | 'special';

export interface CompositeComponent {
  type: ParamType;
  expression: FhirPathAtom;
}

/** One search parameter as it applies to one resource type, its FHIRPath parsed once. */
export interface ParamDef {
  code: string;
  type: ParamType;
  /** Undefined for parameters served from stored fields (`_id`, `_lastUpdated`) or the text (`_text`, `_content`). */
  expression?: FhirPathAtom;
  /** Reference targets. */
  targets: string[];
  components?: CompositeComponent[];
  /** The definition's canonical URL (custom parameters come from SearchParameter resources). */
  url?: string;
  custom: boolean;
}

/** Medplum's own additions to the R4 set, not part of FHIR. */
const NOT_R4 = new Set(['_compartment', '_project']);

/**
 * The search parameters of every resource type: the official R4 definitions (through `@medplum/core`)
 * plus custom SearchParameter resources registered at run time. Indexing and searching both read it,
 * so a parameter added here is indexed on the next write and searchable at once.
 */
export class SearchParameterRegistry {
  private readonly byType = new Map<string, Map<string, ParamDef>>();
  private readonly custom = new Map<string, SearchParameter>();
  private readonly byUrl = new Map<string, SearchParameter>();
  private generation = 0;

  /** Increases whenever custom parameters change (callers cache per generation). */
  get version(): number {
    return this.generation;
  }

  params(type: string): Map<string, ParamDef> {
    let map = this.byType.get(type);
    if (!map) {
      map = new Map();
      for (const sp of Object.values(getSearchParameters(type) ?? {})) {
        if (!sp.code || NOT_R4.has(sp.code)) continue;
        const def = this.define(sp, type, false);
        if (def) map.set(sp.code, def);
      }
      for (const sp of this.custom.values()) {
        if (!sp.base?.includes(type as never) && !sp.base?.includes('Resource' as never)) continue;
        const def = this.define(sp, type, true);
        if (def) map.set(sp.code!, def);
      }
      for (const special of ['_text', '_content'] as const) map.set(special, { code: special, type: 'special', targets: [], custom: false });
      this.byType.set(type, map);
    }
    return map;
  }

  get(type: string, code: string): ParamDef | undefined {
    return this.params(type).get(code);
  }

  /** Registers (or replaces) a custom SearchParameter; returns the resource types it applies to. */
  register(sp: SearchParameter): string[] {
    if (!sp.code || !sp.type || !sp.expression || !sp.base?.length) return [];
    this.unregister(sp.id ?? sp.url ?? sp.code);
    this.custom.set(sp.id ?? sp.url ?? sp.code, sp);
    this.generation++;
    const types = sp.base.includes('Resource' as never) ? getResourceTypes() : (sp.base as string[]);
    for (const t of types) this.byType.delete(t);
    return types;
  }

  unregister(key: string): void {
    const old = this.custom.get(key);
    if (!old) return;
    this.custom.delete(key);
    this.generation++;
    for (const t of old.base ?? []) this.byType.delete(t);
    if (old.base?.includes('Resource' as never)) this.byType.clear();
  }

  customParameters(): SearchParameter[] {
    return [...this.custom.values()];
  }

  private define(sp: SearchParameter, type: string, custom: boolean): ParamDef | undefined {
    const code = sp.code!;
    const targets = (sp.target as string[] | undefined) ?? [];
    if (code === '_id' || code === '_lastUpdated') return { code, type: sp.type as ParamType, targets, custom, url: sp.url };
    if (!sp.expression) return undefined;
    try {
      const def: ParamDef = { code, type: sp.type as ParamType, expression: parseFhirPath(forType(sp.expression, type)), targets, custom, url: sp.url };
      if (sp.type === 'composite') {
        def.components = (sp.component ?? []).map((c) => {
          const target = this.definitionByUrl(c.definition);
          return { type: (target?.type ?? 'token') as ParamType, expression: parseFhirPath(c.expression!) };
        });
      }
      return def;
    } catch {
      return undefined; // an expression @medplum/core cannot parse: the parameter is reported as unsupported
    }
  }

  private definitionByUrl(url: string | undefined): SearchParameter | undefined {
    if (!url) return undefined;
    if (!this.byUrl.size) {
      for (const t of getResourceTypes()) for (const sp of Object.values(getSearchParameters(t) ?? {})) if (sp.url) this.byUrl.set(sp.url, sp);
    }
    return this.byUrl.get(url) ?? [...this.custom.values()].find((sp) => sp.url === url);
  }
}

/**
 * The branches of a shared parameter's expression that apply to `type`: `patient` is one union over ~30
 * types ("AllergyIntolerance.patient | CarePlan.subject.where(…) | …"); evaluating only this type's branch
 * makes indexing several times cheaper.
 */
function forType(expression: string, type: string): string {
  const branches = expression.split(/\s\|\s/);
  const own = branches.filter((b) => new RegExp(`^\\(?${type}[.\\s)]`).test(b.trim()) || b.trim() === type);
  return own.length ? own.join(' | ') : expression;
}
