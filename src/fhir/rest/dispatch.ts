import { errors } from '../outcomes.js';
import { matchRoute } from './routes.js';
import { checkParametersShape } from '../operations/parameters-shape.js';
import type { FhirRequest, FhirResponse, HandlerContext } from './types.js';

/** Runs one FHIR request through the interaction table: the REST edge and Bundle entries both use it. */
export async function dispatch(req: FhirRequest, ctx: HandlerContext): Promise<FhirResponse> {
  const match = matchRoute(req.method, req.segments, ctx.routes);
  const where = `/${req.segments.join('/')}`;
  if (!match) throw errors.notFound(`No FHIR interaction at ${req.method} ${where}`);
  if ('allowed' in match) throw errors.methodNotAllowed(`${req.method} is not allowed on ${where}`, match.allowed);
  if (match.route.interaction === 'operation') checkParametersShape(req.body);
  return match.route.handler(req, ctx, match.params);
}
