import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { ROOT } from './helpers/fixtures.js';

// The layering is data (scripts/layers.json); this runs the same check `npm run lint` does.
interface Edge {
  from: string;
  to: string;
  from_layer: string;
  to_layer: string;
}
interface Report {
  files: number;
  imports: number;
  upward: Edge[];
  cycles: string[][];
  unplaced: string[];
  missing: string[];
}
interface Checker {
  check(): Report;
  cyclesOf(graph: Map<string, string[]>): string[][];
  layerOf(file: string, layers: { name: string; paths: string[]; only?: string[] }[]): { name: string; rank: number } | undefined;
  loadLayers(): { layers: { name: string; paths: string[]; only?: string[] }[] };
}
const checker = (await import(pathToFileURL(path.join(ROOT, 'scripts/check-imports.mjs')).href)) as Checker;

t.test('the source tree keeps its layers', async (t) => {
  const r = checker.check();
  t.ok(r.files > 50 && r.imports > 200, `the check saw the tree (${r.files} files, ${r.imports} imports)`);
  t.same(r.upward, [], 'no import reaches a higher layer');
  t.same(r.cycles, [], 'no import cycle');
  t.same(r.unplaced, [], 'every source file belongs to a layer');
  t.same(r.missing, [], 'every relative import names a file that exists');
});

t.test('the checker finds what it must', async (t) => {
  const { layers } = checker.loadLayers();
  t.equal(checker.layerOf('src/core/call.ts', layers)?.name, 'core');
  t.equal(checker.layerOf('src/observability/logger.ts', layers)?.name, 'logging', 'a file entry beats its folder');
  t.equal(checker.layerOf('src/observability/metrics.ts', layers)?.name, 'metrics');
  t.ok((checker.layerOf('src/core/call.ts', layers)?.rank ?? 99) < (checker.layerOf('src/gate/run.ts', layers)?.rank ?? -1), 'core sits below the gate');
  const graph = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
    ['d.ts', ['d.ts']],
    ['e.ts', ['a.ts']],
  ]);
  t.same(
    checker
      .cyclesOf(graph)
      .map((c) => c.join(' '))
      .sort(),
    ['a.ts b.ts c.ts', 'd.ts'],
    'a three-file cycle and a self-import; e.ts is in none',
  );
});
