import { readFileSync } from 'node:fs';
import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import { serverRoutes, type Route } from './rest/routes.js';
import { operationCanonical, type BusinessOperation } from './operations/registry.js';
import { SearchParameterRegistry } from './search/parameters.js';

const HL7_OPERATIONS = new Set(['validate', 'everything']);
const FILE = new URL('../../capability-statement.json', import.meta.url);

/** Type-level and instance-level interaction codes of the route table, in spec order. */
const TYPE_INTERACTIONS = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'] as const;

/**
 * The CapabilityStatement the route table and the registered operations imply, for every resource type.
 * `capability-statement.json` must equal this (a test checks it and regenerates with `npm run capability`),
 * so the file never promises what is not served nor hides what is.
 */
/** Types only the server writes (the audit trail, src/audit/): clients read and search them, never write them (405). */
export const SERVER_WRITTEN_TYPES: ReadonlySet<string> = new Set(['AuditEvent']);
const SERVER_WRITTEN_INTERACTIONS = new Set(['read', 'search-type']);

export function deriveCapabilityStatement(resourceTypes: string[], operations: readonly BusinessOperation[], base: CapabilityStatement = readDeclared()): CapabilityStatement {
  const routes = serverRoutes(operations);
  const registered = new Map(operations.map((op) => [op.name, op]));
  const typeRoutes = routes.filter((r) => r.pattern[0] === ':type');
  const has = (pred: (r: Route) => boolean) => typeRoutes.some(pred);
  const interactions = TYPE_INTERACTIONS.filter((code) => has((r) => r.interaction === code && !r.conditional));
  const operationsOf = (type: string) =>
    [...new Set(typeRoutes.filter((r) => r.operation && (!r.types || r.types.includes(type))).map((r) => r.operation!))].sort();
  const registry = new SearchParameterRegistry();
  const searchable = has((r) => r.interaction === 'search-type');
  const resource = resourceTypes.map((type) => ({
    type: type as CapabilityStatementRestResource['type'],
    profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
    ...(SERVER_WRITTEN_TYPES.has(type)
      ? { interaction: interactions.filter((code) => SERVER_WRITTEN_INTERACTIONS.has(code)).map((code) => ({ code })), versioning: 'no-version' as const, readHistory: false, updateCreate: false, conditionalCreate: false, conditionalRead: 'full-support' as const, conditionalUpdate: false, conditionalDelete: 'not-supported' as const }
      : {
          interaction: interactions.map((code) => ({ code })),
          versioning: 'versioned-update' as const,
          readHistory: true,
          updateCreate: true,
          conditionalCreate: true,
          conditionalRead: 'full-support' as const,
          conditionalUpdate: has((r) => r.interaction === 'update' && !!r.conditional),
          conditionalDelete: has((r) => r.interaction === 'delete' && !!r.conditional) ? ('single' as const) : ('not-supported' as const),
        }),
    ...(searchable
      ? {
          searchInclude: ['*', ...[...registry.params(type).values()].filter((p) => p.type === 'reference').map((p) => `${type}:${p.code}`)],
          searchParam: [...registry.params(type).values()]
            .filter((p) => !p.code.startsWith('_'))
            .map((p) => ({ name: p.code, type: p.type as 'token', ...(p.url ? { definition: p.url } : {}) })),
        }
      : {}),
    operation: operationsOf(type).map((name) => ({
      name,
      // HL7's own core operations by their canonical; registered ones by the registry's (ours under the product's namespace).
      definition: registered.has(name) && !HL7_OPERATIONS.has(name) ? operationCanonical(registered.get(name)!, type)
        : name === 'validate' ? 'http://hl7.org/fhir/OperationDefinition/Resource-validate'
          : `http://hl7.org/fhir/OperationDefinition/${type}-${name}`,
    })),
  }) satisfies CapabilityStatementRestResource);
  const systemInteractions = [
    ...new Set(routes.filter((r) => r.pattern[0] !== ':type' && r.interaction !== 'capabilities' && r.interaction !== 'operation').flatMap((r) => [r.interaction, ...(r.alsoDeclares ?? [])])),
  ];
  const systemOperations = operations.filter((op) => op.levels.includes('system')).map((op) => ({ name: op.name, definition: operationCanonical(op, undefined) }));
  // Any system-level operations of the base are replaced by the registered ones.
  const { operation: _declaredOperations, ...rest } = base.rest?.[0] ?? { mode: 'server' as const };
  return {
    ...base,
    rest: [{
      ...rest,
      mode: 'server',
      security: {
        cors: true,
        service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
        description:
          'SMART App Launch 2 (with 1.0 scopes) and Backend Services: every interaction but /metadata needs a Bearer access token; ' +
          'endpoints in /.well-known/smart-configuration (and the oauth-uris extension of the served statement).',
      },
      resource,
      interaction: systemInteractions.map((code) => ({ code: code as 'history-system' })),
      ...(systemOperations.length ? { operation: systemOperations } : {}),
      // Parameters every type has (R4 3.1.1.4, "Parameters for all resources").
      searchParam: [
        { name: '_id', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-id' },
        { name: '_lastUpdated', type: 'date', definition: 'http://hl7.org/fhir/SearchParameter/Resource-lastUpdated' },
        { name: '_tag', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-tag' },
        { name: '_profile', type: 'uri', definition: 'http://hl7.org/fhir/SearchParameter/Resource-profile' },
        { name: '_security', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-security' },
        { name: '_source', type: 'uri', definition: 'http://hl7.org/fhir/SearchParameter/Resource-source' },
        { name: '_text', type: 'string', documentation: 'Words in the narrative (a simple full-text match)' },
        { name: '_content', type: 'string', documentation: 'Words anywhere in the resource (a simple full-text match)' },
      ],
    }],
  };
}

export function readDeclared(): CapabilityStatement {
  return JSON.parse(readFileSync(FILE, 'utf8')) as CapabilityStatement;
}

/** What GET /metadata serves: the declared statement plus facts of this running instance. */
export function runtimeCapabilityStatement(opts: { baseUrl: string; version: string; startedAt: Date; issuer?: string }): CapabilityStatement {
  const declared = readDeclared();
  const rest = declared.rest?.[0];
  const oauthUris = opts.issuer
    ? {
        url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
        extension: [
          { url: 'authorize', valueUri: `${opts.issuer}/authorize` },
          { url: 'token', valueUri: `${opts.issuer}/token` },
          { url: 'introspect', valueUri: `${opts.issuer}/introspect` },
          { url: 'revoke', valueUri: `${opts.issuer}/revoke` },
        ],
      }
    : undefined;
  return {
    ...declared,
    // SMART 1.0 clients find the endpoints here (SMART 2 uses .well-known/smart-configuration).
    ...(rest && oauthUris ? { rest: [{ ...rest, security: { ...rest.security, extension: [oauthUris] } }, ...(declared.rest ?? []).slice(1)] } : {}),
    date: opts.startedAt.toISOString(),
    software: { ...declared.software, name: declared.software?.name ?? 'Medivoy', version: opts.version },
    implementation: { description: declared.implementation?.description ?? 'Medivoy FHIR server', url: opts.baseUrl },
  };
}
