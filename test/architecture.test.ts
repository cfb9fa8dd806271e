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
