#!/usr/bin/env node
// Runs the shared policy cases through a compiled policy.wasm with the opa-wasm SDK, against
// the default data (the same cases `opa test policies/` runs in Rego).
//
// Usage: node scripts/policy-cases.mjs [--wasm FILE] [--data FILE] [--compare OTHER.wasm]
//   --compare  also evaluate every case input with OTHER.wasm and fail if any result differs
// Prints "N passed, M failed" (and the failures); exit 0 only when all pass.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { loadPolicy } from '@open-policy-agent/opa-wasm';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? resolve(args[i + 1]) : dflt;
};
const wasmPath = opt('--wasm', join(repo, 'policies', 'policy.wasm'));
const dataPath = opt('--data', join(repo, 'policies', 'data.json'));
const comparePath = opt('--compare', null);
const readJson = (p) => JSON.parse(readFileSync(p, 'utf8'));

const decisionCases = readJson(join(repo, 'policies', 'testdata', 'cases', 'cases.json'));
const visibleCases = readJson(join(repo, 'policies', 'testdata', 'visible_tools', 'cases.json'));
const data = readJson(dataPath);

async function load(path) {
  const policy = await loadPolicy(readFileSync(path));
  policy.setData(data);
  return (input, entrypoint) => {
    const out = policy.evaluate(input, entrypoint);
    return out.length === 1 ? out[0].result : { undefinedOrMultiple: out };
  };
}

const evaluate = await load(wasmPath);
const other = comparePath ? await load(comparePath) : null;
const failures = [];
let passed = 0;

function check(name, ok, detail) {
  if (ok) passed += 1;
  else failures.push({ name, ...detail });
}

for (const c of decisionCases) {
  const d = evaluate(c.input, 'bulwark/authz/decision');
  const e = c.expect;
  const ok =
    d !== null &&
    typeof d === 'object' &&
    d.allow === e.allow &&
    Array.isArray(d.reasons) &&
    (e.reasons_include ?? []).every((r) => d.reasons.includes(r)) &&
    (!('obligations' in e) || isDeepStrictEqual(d.obligations, e.obligations));
  check(c.name, ok, { expected: e, got: d });
  if (other) {
    const o = other(c.input, 'bulwark/authz/decision');
    check(`${c.name} (compare)`, isDeepStrictEqual(d, o), { got: d, other: o });
  }
}

for (const c of visibleCases) {
  const v = evaluate(c.input, 'bulwark/authz/visible_tools');
  check(`visible_tools: ${c.name}`, isDeepStrictEqual(v, c.expect), { expected: c.expect, got: v });
  if (other) {
    const o = other(c.input, 'bulwark/authz/visible_tools');
    check(`visible_tools: ${c.name} (compare)`, isDeepStrictEqual(v, o), { got: v, other: o });
  }
}

for (const f of failures) process.stderr.write(`FAIL ${JSON.stringify(f)}\n`);
process.stdout.write(`${passed} passed, ${failures.length} failed\n`);
process.exit(failures.length ? 1 : 0);
