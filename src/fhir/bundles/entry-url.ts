import { errors } from '../outcomes.js';

export interface EntryTarget {
  segments: string[];
  query: URLSearchParams;
}

/**
 * Parses `entry.request.url` (R4 3.1.0.11.3): relative to the base (`Patient/1`, `Patient?identifier=x`),
 * or absolute on our own base. Anything else is a 400 naming the entry.
 */
export function parseEntryUrl(url: unknown, baseUrl: string, index: number): EntryTarget {
  if (typeof url !== 'string' || url.trim() === '') throw errors.badRequest(`Bundle entry ${index}: request.url is missing`, [`Bundle.entry[${index}].request.url`]);
  let rel = url.trim();
  if (/^https?:\/\//i.test(rel)) {
    if (!rel.startsWith(`${baseUrl}/`)) throw errors.badRequest(`Bundle entry ${index}: request.url '${url}' is not on this server`, [`Bundle.entry[${index}].request.url`]);
    rel = rel.slice(baseUrl.length + 1);
  }
  rel = rel.replace(/^\/+/, '');
  const q = rel.indexOf('?');
  const path = q < 0 ? rel : rel.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : rel.slice(q + 1));
  try {
    return { segments: path ? path.split('/').filter(Boolean).map(decodeURIComponent) : [], query };
  } catch {
    throw errors.badRequest(`Bundle entry ${index}: request.url '${url}' is not valid URL encoding`);
  }
}
