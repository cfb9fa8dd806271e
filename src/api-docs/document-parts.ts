import type { OpenApiDocument, PathItem } from './openapi-types.js';

/** Tag of a path item: every operation of a path has the same one (its resource type, `System` or `Authorization`). */
const tagOf = (item: PathItem): string | undefined => {
  const { parameters: _shared, ...ops } = item;
  return Object.values(ops)[0]?.tags[0];
};

/** The part names: `System` (with `Authorization`) and one per resource type, in the document's tag order. */
export function partNames(doc: OpenApiDocument): string[] {
  const used = new Set(Object.values(doc.paths).map(tagOf));
  return doc.tags.map((t) => t.name).filter((n) => n !== 'Authorization' && used.has(n));
}

/** Every `#/components/kind/name` the value refers to, transitively through the components themselves. */
function reachable(doc: OpenApiDocument, roots: unknown[]): Set<string> {
  const seen = new Set<string>();
  const stack = [...roots];
  while (stack.length) {
    const v = stack.pop();
    if (Array.isArray(v)) stack.push(...v);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === '$ref' && typeof x === 'string' && x.startsWith('#/components/') && !seen.has(x)) {
          seen.add(x);
          const [, , kind, name] = x.split('/');
          stack.push((doc.components as unknown as Record<string, Record<string, unknown>>)[kind!]?.[name!]);
        } else if (typeof x === 'object') stack.push(x);
      }
    }
  }
  return seen;
}

/**
 * One part of the document, itself a complete OpenAPI document: the paths of one resource type (or of the
 * system level and SMART discovery) with only the components they use. The viewer loads a part at a time,
 * since rendering all ~145 types at once takes it most of a minute.
 */
export function documentPart(doc: OpenApiDocument, part: string): OpenApiDocument | undefined {
  const tags = part === 'System' ? ['System', 'Authorization'] : [part];
  const paths = Object.fromEntries(Object.entries(doc.paths).filter(([, item]) => tags.includes(tagOf(item) ?? '')));
  if (!Object.keys(paths).length) return undefined;
  const refs = reachable(doc, [paths]);
  const pick = <T>(kind: string, all: Record<string, T>): Record<string, T> =>
    Object.fromEntries(Object.entries(all).filter(([name]) => refs.has(`#/components/${kind}/${name}`)));
  return {
    ...doc,
    info: { ...doc.info, title: `${doc.info.title}: ${part}` },
    tags: doc.tags.filter((t) => tags.includes(t.name)),
    paths,
    components: {
      schemas: pick('schemas', doc.components.schemas),
      parameters: pick('parameters', doc.components.parameters),
      responses: pick('responses', doc.components.responses),
      headers: pick('headers', doc.components.headers),
      securitySchemes: doc.components.securitySchemes,
    },
  };
}
