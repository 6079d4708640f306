#!/usr/bin/env node
// Validates deployment files against their published schemas, strictly (an unknown field is an
// error, like `kubectl apply --validate=strict` and kubeconform -strict):
//
//   node deploy/check/validate.mjs k8s --spec DIR [--monitoring DIR] FILE...
//       Every YAML document in FILE (helm template output) against the Kubernetes OpenAPI v3
//       component schemas in DIR (k8s.io/kubernetes@v1.34.x api/openapi-spec/v3, from the Go module
//       proxy). The schema is picked by apiVersion/kind through x-kubernetes-group-version-kind;
//       $ref is resolved inside the merged components; every object schema with properties gets
//       additionalProperties: false unless it says x-kubernetes-preserve-unknown-fields.
//       monitoring.coreos.com/v1 ServiceMonitor (a CRD, not in that spec) is checked against
//       servicemonitor.schema.json beside this file, whose field names are checked against the json
//       tags of the prometheus-operator Go types in --monitoring DIR
//       (github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring@v0.95.2).
//   node deploy/check/validate.mjs compose --schema FILE [--env FILE] COMPOSE_FILE
//       A compose file, after ${VAR} interpolation (as docker compose does it), against the Compose
//       Specification JSON schema FILE (compose-go/v2 schema/compose-spec.json).
//
// Prints one line per document, `validate: N valid, M invalid` last; exit 0 only when all are valid.
// Uses ajv (in node_modules through the MCP SDK) and yaml (a dependency).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import Ajv2020 from 'ajv/dist/2020.js';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));

function usage() {
  console.error('usage: validate.mjs k8s --spec DIR [--monitoring DIR] FILE...\n       validate.mjs compose --schema FILE [--env FILE] COMPOSE_FILE');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {};
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      if (i + 1 >= argv.length) usage();
      opts[a.slice(2)] = argv[++i];
    } else files.push(a);
  }
  return { opts, files };
}

// --- Kubernetes ------------------------------------------------------------------------------

const INT32 = 2 ** 31;
const FORMATS = {
  int32: { type: 'number', validate: (n) => Number.isInteger(n) && n >= -INT32 && n < INT32 },
  int64: { type: 'number', validate: (n) => Number.isInteger(n) },
  double: { type: 'number', validate: () => true },
  float: { type: 'number', validate: () => true },
  byte: /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
  'date-time': /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/i,
  'int-or-string': true,
};

/** Strict copy of an OpenAPI v3 schema: closed objects, nullable as a type, no defaults. */
function strictify(schema) {
  if (Array.isArray(schema)) return schema.map(strictify);
  if (schema === null || typeof schema !== 'object') return schema;
  const out = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'default' || k === 'example') continue;
    if (k === 'properties' || k === 'patternProperties') {
      out[k] = Object.fromEntries(Object.entries(v).map(([p, s]) => [p, strictify(s)]));
    } else if (k === 'description' || k.startsWith('x-kubernetes-')) {
      out[k] = v;
    } else out[k] = strictify(v);
  }
  if (out.properties && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) {
    out.additionalProperties = false;
  }
  if (out.nullable === true) {
    delete out.nullable;
    return { anyOf: [out, { type: 'null' }] };
  }
  delete out.nullable;
  return out;
}

function loadKubernetes(specDir) {
  const files = fs.readdirSync(specDir).filter((f) => f.endsWith('.json'));
  if (!files.length) throw new Error(`${specDir}: no OpenAPI v3 files`);
  const schemas = {};
  const byGvk = new Map();
  for (const f of files) {
    const doc = JSON.parse(fs.readFileSync(path.join(specDir, f), 'utf8'));
    for (const [name, s] of Object.entries(doc.components?.schemas ?? {})) {
      if (!(name in schemas)) schemas[name] = strictify(s);
      for (const gvk of s['x-kubernetes-group-version-kind'] ?? []) {
        const apiVersion = gvk.group ? `${gvk.group}/${gvk.version}` : gvk.version;
        const key = `${apiVersion} ${gvk.kind}`;
        // A kind listed by several schemas (DeleteOptions, WatchEvent) is not one we render.
        if (!byGvk.has(key)) byGvk.set(key, name);
      }
    }
  }
  const ajv = new Ajv({ strict: false, allErrors: true, formats: FORMATS, validateSchema: false });
  ajv.addSchema({ $id: 'k8s.json', components: { schemas } });
  return { ajv, byGvk, count: Object.keys(schemas).length };
}

/** Every json tag in the Go sources of a package folder (field names the API accepts). */
function goJsonTags(dir) {
  const tags = new Set();
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.go') && !n.endsWith('_test.go'))) {
    for (const m of fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/`json:"([A-Za-z0-9_]+)[,"]/g)) tags.add(m[1]);
  }
  return tags;
}

/** The property names a schema declares (recursively), skipping $ref'd Kubernetes types. */
function propertyNames(schema, into = new Set()) {
  if (Array.isArray(schema)) schema.forEach((s) => propertyNames(s, into));
  else if (schema && typeof schema === 'object') {
    for (const [k, v] of Object.entries(schema)) {
      if (k === 'properties') {
        for (const [p, s] of Object.entries(v)) {
          into.add(p);
          propertyNames(s, into);
        }
      } else if (k !== 'x-go-package') propertyNames(v, into);
    }
  }
  return into;
}

function loadServiceMonitor(ajv, monitoringDir) {
  const schema = JSON.parse(fs.readFileSync(path.join(here, 'servicemonitor.schema.json'), 'utf8'));
  if (monitoringDir) {
    const tags = goJsonTags(path.join(monitoringDir, 'v1'));
    const k8sMeta = new Set(['apiVersion', 'kind', 'metadata']);
    const unknown = [...propertyNames(schema)].filter((p) => !k8sMeta.has(p) && !tags.has(p));
    if (unknown.length) throw new Error(`servicemonitor.schema.json names fields the prometheus-operator v1 types do not have: ${unknown.join(', ')}`);
  }
  return ajv.compile(schema);
}

function describe(err) {
  const at = err.instancePath || '(root)';
  if (err.keyword === 'additionalProperties') return `${at}: unknown field "${err.params.additionalProperty}"`;
  if (err.keyword === 'unevaluatedProperties') return `${at}: unknown field "${err.params.unevaluatedProperty}"`;
  if (err.keyword === 'enum') return `${at}: ${err.message} (${err.params.allowedValues.join(', ')})`;
  return `${at}: ${err.message}`;
}

/** The errors worth showing: oneOf/anyOf wrappers say less than the branches under them. */
function summarise(errors) {
  const lines = [...new Set(errors.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'anyOf' && e.keyword !== 'allOf').map(describe))];
  return lines.length ? lines : [...new Set(errors.map(describe))];
}

export function validateKubernetes({ spec, monitoring }, files) {
  const { ajv, byGvk } = loadKubernetes(spec);
  const compiled = new Map();
  let serviceMonitor;
  const results = [];
  for (const file of files) {
    const docs = parseAllDocuments(fs.readFileSync(file, 'utf8'));
    docs.forEach((doc, i) => {
      const where = `${path.basename(file)}#${i + 1}`;
      if (doc.errors.length) {
        results.push({ where, ok: false, errors: doc.errors.map((e) => e.message.split('\n')[0]) });
        return;
      }
      const obj = doc.toJS();
      if (obj === null || obj === undefined) return; // an empty document between separators
      const id = `${obj.kind ?? '?'}/${obj.metadata?.name ?? '?'}`;
      const errors = [];
      if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') errors.push('(root): apiVersion and kind must be strings');
      else if (typeof obj.metadata?.name !== 'string' || !obj.metadata.name) errors.push('/metadata/name: required');
      let validate;
      if (!errors.length) {
        const key = `${obj.apiVersion} ${obj.kind}`;
        if (key === 'monitoring.coreos.com/v1 ServiceMonitor') validate = serviceMonitor ??= loadServiceMonitor(ajv, monitoring);
        else {
          const name = byGvk.get(key);
          if (!name) errors.push(`(root): no schema for apiVersion ${obj.apiVersion} kind ${obj.kind} in Kubernetes 1.34`);
          else {
            if (!compiled.has(name)) compiled.set(name, ajv.getSchema(`k8s.json#/components/schemas/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`));
            validate = compiled.get(name);
          }
        }
      }
      if (validate && !validate(obj)) errors.push(...summarise(validate.errors ?? []));
      results.push({ where, id, ok: errors.length === 0, errors });
    });
  }
  return results;
}

// --- Compose ---------------------------------------------------------------------------------

/** ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, $$ — as compose reads them. */
export function interpolate(value, env, at = '', problems = []) {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, name, op, arg, bare) => {
      if (m === '$$') return '$';
      const n = name ?? bare;
      const v = env[n];
      const unset = v === undefined || (op?.startsWith(':') && v === '');
      if (!op) return v ?? '';
      if (op.endsWith('-')) return unset ? arg : v;
      if (unset) problems.push(`${at}: required variable ${n} is missing a value: ${arg}`);
      return v ?? '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, `${at}[${i}]`, problems));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, at ? `${at}.${k}` : k, problems)]));
  return value;
}

/** Compose's own casts after interpolation: ports, numbers and booleans given as strings stay strings in YAML. */
export function validateCompose({ schema, env: envFile }, file) {
  const env = { ...process.env };
  if (envFile) {
    for (const line of fs.readFileSync(envFile, 'utf8').split('\n')) {
      const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
      if (m) env[m[1]] = m[2];
    }
  }
  const problems = [];
  const raw = parseYaml(fs.readFileSync(file, 'utf8'), { merge: true, maxAliasCount: 1000 });
  const doc = interpolate(raw, env, '', problems);
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(JSON.parse(fs.readFileSync(schema, 'utf8')));
  const errors = [...problems];
  if (!validate(doc)) errors.push(...summarise(validate.errors ?? []));
  return [{ where: path.basename(file), id: 'compose', ok: errors.length === 0, errors, doc }];
}

// --- main ------------------------------------------------------------------------------------

function report(results) {
  let bad = 0;
  for (const r of results) {
    if (r.ok) console.log(`ok       ${r.where} ${r.id}`);
    else {
      bad += 1;
      console.log(`INVALID  ${r.where} ${r.id ?? ''}`);
      for (const e of r.errors.slice(0, 20)) console.log(`           ${e}`);
    }
  }
  console.log(`validate: ${results.length - bad} valid, ${bad} invalid`);
  return bad === 0 && results.length > 0 ? 0 : 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [mode, ...rest] = process.argv.slice(2);
  const { opts, files } = parseArgs(rest);
  try {
    if (mode === 'k8s') {
      if (!opts.spec || !files.length) usage();
      process.exitCode = report(validateKubernetes(opts, files));
    } else if (mode === 'compose') {
      if (!opts.schema || files.length !== 1) usage();
      process.exitCode = report(validateCompose(opts, files[0]));
    } else usage();
  } catch (err) {
    console.error(`validate: ${err.message}`);
    process.exitCode = 2;
  }
}
