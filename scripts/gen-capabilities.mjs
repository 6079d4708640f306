#!/usr/bin/env node
// Generates policies/capabilities.json: the capabilities of the pinned opa, cut down to the
// builtins that a policy compiled with `opa build -t wasm` can actually run under the
// @open-policy-agent/opa-wasm JavaScript SDK. With this file passed to `opa build
// --capabilities`, a policy that uses time.now_ns, http.send, io.jwt.*, crypto.*, rand.*, ...
// fails to BUILD instead of failing at evaluation time.
//
// Usage: node scripts/gen-capabilities.mjs [--check] [--out FILE]
//   --check   do not write; exit 1 if FILE differs from what would be generated
//   env OPA       opa binary (default: opa on PATH, else $(go env GOPATH)/bin/opa)
//   env OPA_SRC   opa module source; when it exists, the NATIVE list below is verified
//                 against internal/compiler/wasm/wasm.go (default: the Go module cache)
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const OPA_VERSION = '1.22.3';

// Builtins OPA's wasm compiler implements inside the module (opa v1.22.3,
// internal/compiler/wasm/wasm.go `builtinsFunctions`, names resolved via v1/ast).
const NATIVE = [
  'abs',
  'all',
  'and',
  'any',
  'array.concat',
  'array.flatten',
  'array.reverse',
  'array.slice',
  'base64.decode',
  'base64.encode',
  'base64.is_valid',
  'base64url.decode',
  'base64url.encode',
  'bits.and',
  'bits.lsh',
  'bits.negate',
  'bits.or',
  'bits.rsh',
  'bits.xor',
  'ceil',
  'concat',
  'contains',
  'count',
  'div',
  'endswith',
  'equal',
  'floor',
  'format_int',
  'glob.match',
  'graph.reachable',
  'gt',
  'gte',
  'indexof',
  'internal.member_2',
  'internal.member_3',
  'internal.template_string',
  'intersection',
  'is_array',
  'is_boolean',
  'is_null',
  'is_number',
  'is_object',
  'is_set',
  'is_string',
  'json.filter',
  'json.is_valid',
  'json.marshal',
  'json.remove',
  'json.unmarshal',
  'lower',
  'lt',
  'lte',
  'max',
  'min',
  'minus',
  'mul',
  'neq',
  'net.cidr_contains',
  'net.cidr_intersects',
  'net.cidr_overlap',
  'numbers.range',
  'object.filter',
  'object.get',
  'object.keys',
  'object.remove',
  'object.union',
  'object.union_n',
  'or',
  'plus',
  'product',
  're_match',
  'regex.find_all_string_submatch_n',
  'regex.is_valid',
  'regex.match',
  'rem',
  'replace',
  'round',
  'set_diff',
  'sort',
  'split',
  'startswith',
  'strings.replace_n',
  'strings.reverse',
  'substring',
  'sum',
  'to_number',
  'trim',
  'trim_left',
  'trim_prefix',
  'trim_right',
  'trim_space',
  'trim_suffix',
  'type_name',
  'union',
  'upper',
  'walk',
];

// Compiled away by the planner (unification and assignment): always usable.
const PLANNER = ['eq', 'assign'];

// Implemented by the JavaScript SDK itself (opa-wasm 1.10.0 src/builtins/*.js).
const SDK = ['json.is_valid', 'regex.split', 'sprintf', 'yaml.is_valid', 'yaml.marshal', 'yaml.unmarshal'];

// The Wasm ABI the SDK accepts (major 1; it reads any minor).
const WASM_ABI = [
  { version: 1, minor_version: 1 },
  { version: 1, minor_version: 2 },
];

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');
const args = process.argv.slice(2);
const check = args.includes('--check');
const outIdx = args.indexOf('--out');
const out = outIdx >= 0 ? resolve(args[outIdx + 1]) : join(repo, 'policies', 'capabilities.json');

function fail(msg) {
  process.stderr.write(`gen-capabilities: ${msg}\n`);
  process.exit(1);
}

function tryExec(cmd, argv) {
  try {
    return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return null;
  }
}

function findOpa() {
  const candidates = [];
  if (process.env.OPA) candidates.push(process.env.OPA);
  candidates.push('opa');
  const gopath = tryExec('go', ['env', 'GOPATH']);
  if (gopath) candidates.push(join(gopath.trim(), 'bin', 'opa'));
  for (const c of candidates) {
    const v = tryExec(c, ['version']);
    if (v && new RegExp(`^Version: ${OPA_VERSION.replaceAll('.', '\\.')}$`, 'm').test(v)) return c;
  }
  fail(`opa ${OPA_VERSION} not found (tried ${candidates.join(', ')}); run scripts/toolchain.sh`);
}

// Cross-check NATIVE against the opa source, when the module source is available.
function verifyNative() {
  let src = process.env.OPA_SRC;
  if (!src) {
    const gomodcache = tryExec('go', ['env', 'GOMODCACHE']);
    if (gomodcache) src = join(gomodcache.trim(), 'github.com', 'open-policy-agent', `opa@v${OPA_VERSION}`);
  }
  const wasmGo = src && join(src, 'internal', 'compiler', 'wasm', 'wasm.go');
  if (!wasmGo || !existsSync(wasmGo)) return false;
  const text = readFileSync(wasmGo, 'utf8');
  const start = text.indexOf('var builtinsFunctions = map[string]string{');
  if (start < 0) fail(`cannot find builtinsFunctions in ${wasmGo}`);
  const block = text.slice(start, text.indexOf('\n}\n', start));
  const idents = [...block.matchAll(/ast\.(\w+)\.Name:/g)].map((m) => m[1]);
  const astDir = join(src, 'v1', 'ast');
  const astSrc = readdirSync(astDir)
    .filter((f) => f.endsWith('.go') && !f.endsWith('_test.go'))
    .map((f) => readFileSync(join(astDir, f), 'utf8'))
    .join('\n');
  const names = new Set();
  for (const id of idents) {
    const m = astSrc.match(new RegExp(`var ${id} = &Builtin\\{\\s*Name:\\s*("[^"]+"|\\w+)`));
    if (!m) fail(`cannot resolve ast.${id}.Name in ${astDir}`);
    let name = m[1];
    if (name.startsWith('"')) name = name.slice(1, -1);
    else {
      const c = astSrc.match(new RegExp(`${name}\\s*=\\s*"([^"]+)"`));
      if (!c) fail(`cannot resolve constant ${name} in ${astDir}`);
      name = c[1];
    }
    names.add(name);
  }
  const listed = new Set(NATIVE);
  const missing = [...names].filter((n) => !listed.has(n)).sort();
  const extra = [...listed].filter((n) => !names.has(n)).sort();
  if (missing.length || extra.length) {
    fail(`NATIVE list disagrees with ${wasmGo}: not listed ${JSON.stringify(missing)}, not native ${JSON.stringify(extra)}`);
  }
  return true;
}

const opa = findOpa();
const current = JSON.parse(execFileSync(opa, ['capabilities', '--current'], { encoding: 'utf8' }));
verifyNative();

const allowed = new Set([...NATIVE, ...PLANNER, ...SDK]);
const available = new Set(current.builtins.map((b) => b.name));
const unknown = [...allowed].filter((n) => !available.has(n)).sort();
if (unknown.length) fail(`allowed builtins unknown to opa ${OPA_VERSION}: ${unknown.join(', ')}`);

const result = {
  builtins: current.builtins.filter((b) => allowed.has(b.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  future_keywords: current.future_keywords ?? [],
  features: current.features ?? [],
  wasm_abi_versions: WASM_ABI,
};
const text = `${JSON.stringify(result, null, 2)}\n`;

if (check) {
  const have = existsSync(out) ? readFileSync(out, 'utf8') : '';
  if (have !== text) fail(`${out} is stale; run: node scripts/gen-capabilities.mjs`);
  process.exit(0);
}
writeFileSync(out, text);
process.stdout.write(`wrote ${out}: ${result.builtins.length} builtins\n`);
