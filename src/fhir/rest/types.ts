import type { CapabilityStatement, Resource } from '@medplum/fhirtypes';
import type { FhirRepository } from '../storage/repository.js';
import type { AccessContext } from '../../auth/access-policy.js';
import type { Route } from './routes.js';

/** A FHIR request with no trace of the web framework: the REST handlers see only this. */
export interface FhirRequest {
  method: string;
  /** Path segments after the FHIR base, decoded. */
  segments: string[];
  query: URLSearchParams;
  /** Lower-cased header names. */
  headers: Record<string, string | undefined>;
  /** Parsed JSON body, if any. */
  body: unknown;
  /** Absolute FHIR base URL without trailing slash, e.g. https://host/fhir. */
  baseUrl: string;
}

/** What a handler returns; the adapter turns it into HTTP (content negotiation, pretty printing). */
export interface FhirResponse {
  status: number;
  headers?: Record<string, string>;
  /** A stored resource's JSON text (sent as is), a resource/object to serialize, or nothing. */
  body?: { json: string } | Resource | Record<string, unknown>;
}

export interface HandlerContext {
  /** The caller's repository: their access policy is inside it (see auth/scoped-repository.ts). */
  repo: FhirRepository;
  /** Who is calling (from the access token); absent only for the public /metadata. */
  access?: AccessContext;
  /** Every route this server serves: the core interactions and its registered operations (rest/routes.ts). */
  routes: readonly Route[];
  searchDefaultCount: number;
  searchMaxCount: number;
  capabilityStatement: () => CapabilityStatement;
  /** Largest number of entries accepted in a batch or transaction Bundle. */
  maxBundleEntries: number;
  /** Logs an unexpected error that is reported inside a response rather than thrown (batch entries). */
  onUnexpectedError: (err: unknown) => void;
  /** Dispatches a request through the interaction table (Bundle entries use it). */
  dispatch: (req: FhirRequest, ctx: HandlerContext) => Promise<FhirResponse>;
}

export type Handler = (req: FhirRequest, ctx: HandlerContext, params: Record<string, string>) => Promise<FhirResponse>;
