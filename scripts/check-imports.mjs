#!/usr/bin/env node
// The import-boundary check: every relative import in src/ and sandbox/ must go to the same or a
// lower layer (scripts/layers.json), and no file may reach itself through imports (a cycle).
// Type-only imports count: a layer that names a higher layer's types depends on it all the same.
// Prints JSON {files, imports, upward, cycles, unplaced, missing}; exits 1 when any list is not empty.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function sourceFiles(dirs = ['src', 'sandbox']) {
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(path.join(root, d), { withFileTypes: true })) {
      const p = path.posix.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
    }
  };
  for (const d of dirs) if (fs.existsSync(path.join(root, d))) walk(d);
  return out.sort();
}

// Static imports and exports with a relative specifier, and dynamic import('./x.js').
const IMPORT = /(?:^|[;\s])(?:import|export)\s+(?:type\s+)?(?:[\w*${}\s,]+?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

export function importsOf(file) {
  const text = fs
    .readFileSync(path.join(root, file), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');
  const out = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts');
    out.push(target);
  }
  return out;
}

export function loadLayers() {
  return JSON.parse(fs.readFileSync(path.join(root, 'scripts/layers.json'), 'utf8'));
}

export function layerOf(file, layers) {
  let best;
  layers.forEach((l, rank) => {
    for (const p of l.paths)
      if ((file === p || file.startsWith(p)) && (!best || p.length > best.prefix.length)) best = { name: l.name, rank, only: l.only, prefix: p };
  });
  return best;
}

export function check() {
  const { layers } = loadLayers();
  const files = sourceFiles();
  const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => t.startsWith('src/') || t.startsWith('sandbox/'))]));
  const upward = [];
  const unplaced = files.filter((f) => !layerOf(f, layers));
  let imports = 0;
  for (const [from, targets] of graph) {
    const a = layerOf(from, layers);
    for (const to of targets) {
      imports += 1;
      const b = layerOf(to, layers);
      if (!a || !b) continue;
      const allowed = a.only ? a.only.includes(b.name) || a.name === b.name : b.rank <= a.rank;
      if (!allowed) upward.push({ from, to, from_layer: a.name, to_layer: b.name });
    }
  }
  const missing = [...graph.values()].flat().filter((t) => !graph.has(t));
  return {
    files: files.length,
    imports,
    upward,
    cycles: cyclesOf(graph),
    unplaced,
    missing: [...new Set(missing)],
  };
}

/** Strongly connected components with more than one file (Tarjan), or a file importing itself. */
export function cyclesOf(graph) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index += 1;
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = check();
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  process.exit(r.upward.length || r.cycles.length || r.unplaced.length || r.missing.length ? 1 : 0);
}
