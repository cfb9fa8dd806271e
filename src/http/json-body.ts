import type { Context, Next } from 'koa';
import { errors } from '../fhir/outcomes.js';

/** Deeper than any resource (a Questionnaire's nested items stay far below); deeper input is refused before parsing. */
export const MAX_JSON_DEPTH = 512;

/**
 * The deepest nesting of arrays and objects in a JSON text, stopping as soon as it exceeds `limit` (one pass,
 * no allocation; brackets inside strings do not count).
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > limit) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

/** True when a parsed value has a `__proto__` key, or a `constructor` object with `prototype` (prototype poisoning). */
function poisoned(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (!v || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
      continue;
    }
    if (Object.prototype.hasOwnProperty.call(v, '__proto__')) return true;
    const ctor = (v as Record<string, unknown>).constructor;
    if (Object.prototype.hasOwnProperty.call(v, 'constructor') && ctor && typeof ctor === 'object' && Object.prototype.hasOwnProperty.call(ctor, 'prototype')) return true;
    for (const x of Object.values(v)) stack.push(x);
  }
  return false;
}

/**
 * Parses a JSON request body that the body parser read as text (koa-body's `text` for the JSON media types):
 * nesting deeper than MAX_JSON_DEPTH is refused before JSON.parse builds millions of nested values (a 15 MB body
 * of brackets would otherwise cost the process hundreds of megabytes), and prototype-poisoning keys are refused
 * as the JSON parser did before.
 */
export function parseJsonBody() {
  return async (ctx: Context, next: Next) => {
    const body = (ctx.request as { body?: unknown }).body;
    if (typeof body === 'string' && body !== '' && ctx.is('application/json', 'application/fhir+json', 'application/json-patch+json')) {
      if (jsonDepthExceeds(body, MAX_JSON_DEPTH)) throw errors.badRequest(`The request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        throw errors.badRequest('The request body is not valid JSON');
      }
      if (poisoned(parsed)) throw errors.badRequest('The request body holds a "__proto__" or "constructor.prototype" property, which is refused');
      (ctx.request as { body?: unknown }).body = parsed;
    }
    await next();
  };
}
