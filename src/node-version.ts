// Imported by main.ts before any dependency is loaded: this file must import nothing.

/** One sentence naming the version found and the version needed, or undefined when the running Node satisfies `>=X.Y.Z`. */
export function nodeVersionProblem(found: string, range: string): string | undefined {
  const needed = /^\s*>=\s*(\d+)\.(\d+)\.(\d+)\s*$/.exec(range);
  if (!needed) return undefined; // a range this check cannot read is left to npm's engines check
  const have = found.split('.').map(Number);
  const want = needed.slice(1).map(Number);
  for (let i = 0; i < 3; i++) {
    if ((have[i] ?? 0) > want[i]!) return undefined;
    if ((have[i] ?? 0) < want[i]!) {
      return `Medivoy needs Node.js ${range.trim()} (22 LTS), but this is Node.js v${found}: install Node 22 and run it again (in a checkout of this project: source scripts/ci/node22.sh).`;
    }
  }
  return undefined;
}
