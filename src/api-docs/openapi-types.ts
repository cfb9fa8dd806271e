/** The parts of OpenAPI 3.1 this module writes (https://spec.openapis.org/oas/v3.1.0), loosely typed. */
export type Schema = Record<string, unknown>;

/** A component or an inline object; `$ref` points into `#/components/...`. */
export type Ref = { $ref: string };

export interface ParameterObject {
  name: string;
  in: 'query' | 'path' | 'header';
  description?: string;
  required?: boolean;
  schema: Schema;
  style?: string;
  explode?: boolean;
  examples?: Record<string, { value: unknown; summary?: string }>;
}

export interface MediaType {
  schema: Schema | Ref;
  example?: unknown;
}

export interface ResponseObject {
  description: string;
  headers?: Record<string, { description?: string; schema: Schema } | Ref>;
  content?: Record<string, MediaType>;
}

export interface OperationObject {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  parameters?: (ParameterObject | Ref)[];
  requestBody?: { description?: string; required?: boolean; content: Record<string, MediaType> };
  responses: Record<string, ResponseObject | Ref>;
  security?: Record<string, string[]>[];
}

export type PathItem = Partial<Record<'get' | 'put' | 'post' | 'delete' | 'patch', OperationObject>> & { parameters?: (ParameterObject | Ref)[] };

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  jsonSchemaDialect?: string;
  servers: { url: string; description?: string }[];
  security: Record<string, string[]>[];
  tags: { name: string; description?: string; externalDocs?: { url: string } }[];
  paths: Record<string, PathItem>;
  components: {
    schemas: Record<string, Schema>;
    parameters: Record<string, ParameterObject>;
    responses: Record<string, ResponseObject>;
    headers: Record<string, { description: string; schema: Schema }>;
    securitySchemes: Record<string, Schema>;
  };
  externalDocs?: { url: string; description?: string };
}

export const ref = (kind: 'schemas' | 'parameters' | 'responses' | 'headers', name: string): Ref => ({ $ref: `#/components/${kind}/${name}` });

/** The media type every FHIR request and response body has here (JSON only: R4 3.1.0.1.10). */
export const FHIR_JSON = 'application/fhir+json';

/** A FHIR JSON body of a schema component. */
export const fhirContent = (schema: Schema | Ref, example?: unknown): Record<string, MediaType> => ({ [FHIR_JSON]: { schema, ...(example === undefined ? {} : { example }) } });
