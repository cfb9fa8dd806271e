import type { Handler } from '../types.js';

/** GET [base]/metadata (R4 3.1.0.11): the CapabilityStatement, built once at start-up. */
export const metadata: Handler = async (_req, ctx) => ({ status: 200, body: ctx.capabilityStatement() });
