import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';

/** Module boundaries the developers' guide sets, checked on the import statements of src/. */
const SRC = resolve(dirname(new URL(import.meta.url).pathname), '../src');
const BUSINESS = ['scheduling', 'reviews', 'billing', 'analytics'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative import of a file, resolved to a path under src/ (e.g. `scheduling/booking.js`). */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'(\.[^']+)'/g)].map((m) => relative(SRC, resolve(dirname(file), m[1]!)));
}

describe('module boundaries', () => {
  const all = files(SRC);

  it('the FHIR core imports no business module', () => {
    const offending = all
      .filter((f) => relative(SRC, f).startsWith('fhir/'))
      .flatMap((f) => imports(f).filter((i) => BUSINESS.some((b) => i.startsWith(`${b}/`))).map((i) => `${relative(SRC, f)} -> ${i}`));
    expect(offending).toEqual([]);
  });

  it('business modules do not import the REST layer', () => {
    const offending = all
      .filter((f) => BUSINESS.some((b) => relative(SRC, f).startsWith(`${b}/`)))
      .flatMap((f) => imports(f).filter((i) => i.startsWith('fhir/rest/')).map((i) => `${relative(SRC, f)} -> ${i}`));
    expect(offending).toEqual([]);
  });

  it('finds imports at all (the check above would pass on an empty list)', () => {
    expect(imports(join(SRC, 'server.ts'))).toEqual(expect.arrayContaining(['scheduling/booking.js', 'fhir/rest/dispatch.js']));
  });
});

/** Imports that exist at run time (not `import type`/`export type`), as paths under src/. */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(import|export)\s+(?!type\s)[^'"]*?from\s+'(\.[^']+)'/g)].map((m) => relative(SRC, resolve(dirname(file), m[2]!)).replace(/\.js$/, '.ts'));
}

describe('import graph', () => {
  it('has no cycles among run-time imports (a cycle makes module initialisation order-dependent)', () => {
    const graph = new Map(files(SRC).map((f) => [relative(SRC, f), runtimeImports(f)]));
    // Tarjan's strongly connected components: every component of more than one module is a cycle.
    let counter = 0;
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const cycles: string[][] = [];
    const visit = (v: string) => {
      index.set(v, counter);
      low.set(v, counter++);
      stack.push(v);
      onStack.add(v);
      for (const w of graph.get(v) ?? []) {
        if (!graph.has(w)) continue;
        if (!index.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
      if (low.get(v) === index.get(v)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== v);
        if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.sort());
      }
    };
    for (const v of graph.keys()) if (!index.has(v)) visit(v);
    expect(cycles).toEqual([]);
    // The check sees the graph at all.
    expect(graph.get('server.ts')).toEqual(expect.arrayContaining(['fhir/rest/dispatch.ts']));
  });
});
