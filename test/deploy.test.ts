import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/loader.js';
import { ROOT } from './helpers/fixtures.js';

// The deployment files (Dockerfile, compose.yaml, deploy/): scripts/deploy-check.sh must pass (helm
// lint and template, every rendered manifest valid against the Kubernetes 1.34 OpenAPI schema,
// compose.yaml against the Compose Specification), and what they say must be what SECURITY.md and
// the README promise. helm and the schemas come from scripts/toolchain.sh: missing, this fails.

type Obj = Record<string, any>;
interface Result {
  where: string;
  id?: string;
  ok: boolean;
  errors: string[];
}
interface Validator {
  validateKubernetes(opts: { spec: string; monitoring?: string }, files: string[]): Result[];
  validateCompose(opts: { schema: string; env?: string }, file: string): Result[];
}

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-deploy-'));
t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));

const check = spawnSync('bash', [path.join(ROOT, 'scripts', 'deploy-check.sh')], {
  cwd: ROOT,
  env: { ...process.env, DEPLOY_CHECK_OUT: out },
  encoding: 'utf8',
  timeout: 240_000,
});
const checkOutput = `${check.stdout ?? ''}${check.stderr ?? ''}`;

const validator = (await import(pathToFileURL(path.join(ROOT, 'deploy', 'check', 'validate.mjs')).href)) as Validator;

function rendered(name: string): Obj[] {
  const file = path.join(out, `${name}.yaml`);
  if (!fs.existsSync(file)) return [];
  return parseAllDocuments(fs.readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Obj | null)
    .filter((d): d is Obj => d !== null);
}
const byKind = (docs: Obj[], kind: string) => docs.filter((d) => d.kind === kind);

function goModuleDir(module: string): string {
  const r = spawnSync('go', ['mod', 'download', '-json', module], { cwd: out, encoding: 'utf8', env: { ...process.env, GO111MODULE: 'on' } });
  const j = JSON.parse(r.stdout || '{}') as { Dir?: string; Error?: string };
  if (!j.Dir) throw new Error(`go mod download ${module}: ${j.Error ?? r.stderr}`);
  return j.Dir;
}
const schemas = () => ({
  spec: path.join(goModuleDir('k8s.io/kubernetes@v1.34.4'), 'api', 'openapi-spec', 'v3'),
  monitoring: goModuleDir('github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring@v0.95.2'),
  compose: path.join(goModuleDir('github.com/compose-spec/compose-go/v2@v2.16.2'), 'schema', 'compose-spec.json'),
});

function writeDocs(name: string, docs: Obj[]): string {
  const file = path.join(out, name);
  fs.writeFileSync(file, docs.map((d) => JSON.stringify(d)).join('\n---\n'));
  return file;
}

t.test('scripts/deploy-check.sh passes: helm lint, helm template, every manifest valid for Kubernetes 1.34, compose.yaml valid', async (t) => {
  t.equal(check.status, 0, `deploy-check exited ${check.status} (${check.error?.message ?? 'no spawn error'}):\n${checkOutput.slice(-4000)}`);
  t.match(checkOutput, /helm lint --strict/, 'helm lint ran');
  t.match(checkOutput, /validate: [1-9]\d* valid, 0 invalid/, 'the validator checked manifests and refused none');
  t.match(checkOutput, /deploy-check: ok/);
  const counts = [...checkOutput.matchAll(/validate: (\d+) valid, (\d+) invalid/g)].map((m) => Number(m[1]));
  t.ok((counts[0] ?? 0) >= 15, `the chart's renderings gave ${counts[0]} manifests (default, all features, fixed replicas)`);
});

t.test('the rendered Deployment is locked down: non-root, read-only root, seccomp RuntimeDefault, no capabilities, no escalation', async (t) => {
  const docs = rendered('default');
  const deployments = byKind(docs, 'Deployment');
  t.equal(deployments.length, 1, 'one Deployment');
  const d = deployments[0] ?? {};
  const pod = d.spec?.template?.spec ?? {};
  t.equal(pod.securityContext?.runAsNonRoot, true, 'pod runAsNonRoot');
  t.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', 'pod seccomp RuntimeDefault');
  t.equal(pod.automountServiceAccountToken, false, 'no service account token in the pod');
  const containers: Obj[] = [...(pod.containers ?? []), ...(pod.initContainers ?? [])];
  t.ok(containers.length >= 1);
  for (const c of containers) {
    const sc = c.securityContext ?? {};
    t.equal(sc.runAsNonRoot, true, `${c.name}: runAsNonRoot`);
    t.equal(sc.readOnlyRootFilesystem, true, `${c.name}: readOnlyRootFilesystem`);
    t.equal(sc.allowPrivilegeEscalation, false, `${c.name}: allowPrivilegeEscalation false`);
    t.equal(sc.privileged, false, `${c.name}: not privileged`);
    t.same(sc.capabilities?.drop, ['ALL'], `${c.name}: drops ALL capabilities`);
    t.notOk(sc.capabilities?.add, `${c.name}: adds none`);
    t.equal(sc.seccompProfile?.type, 'RuntimeDefault', `${c.name}: seccomp RuntimeDefault`);
    t.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory && c.resources?.limits?.memory, `${c.name}: resource requests and a memory limit`);
  }
  const main = (pod.containers ?? []).find((c: Obj) => c.name === 'bulwark') ?? {};
  t.equal(main.livenessProbe?.httpGet?.path, '/health', 'liveness on /health');
  t.equal(main.readinessProbe?.httpGet?.path, '/ready', 'readiness on /ready');
  t.equal(main.startupProbe?.httpGet?.path, '/health', 'startup on /health');
  for (const p of [main.livenessProbe, main.readinessProbe, main.startupProbe]) {
    t.same(p?.httpGet?.httpHeaders, [{ name: 'Host', value: 'localhost:8765' }], 'probes send a Host on the allow-list');
  }
  const mounts = new Map<string, Obj>((main.volumeMounts ?? []).map((m: Obj) => [m.mountPath, m]));
  t.ok(mounts.has('/tmp') && mounts.has('/var/lib/bulwark/audit'), 'writable /tmp and audit volume');
  t.equal(mounts.get('/etc/bulwark/config')?.readOnly, true, 'config mounted read-only');
  const volumes = new Map<string, Obj>((pod.volumes ?? []).map((v: Obj) => [v.name, v]));
  t.equal(volumes.get('tmp')?.emptyDir?.medium, 'Memory', '/tmp is a memory emptyDir');
  t.notOk(
    (pod.volumes ?? []).some((v: Obj) => v.hostPath),
    'no hostPath volume',
  );
  // Secrets by reference only: every connection string comes from a secretKeyRef.
  const env: Obj[] = main.env ?? [];
  for (const name of ['KEYS_DATABASE_URL', 'AUDIT_DATABASE_URL', 'DATABASE_URL', 'REDIS_URL']) {
    const e = env.find((x) => x.name === name);
    t.ok(e?.valueFrom?.secretKeyRef?.name, `${name} from an existing Secret`);
    t.notOk(e?.value, `${name} has no literal value`);
  }
  t.notOk(byKind(docs, 'Secret').length, 'the chart creates no Secret');
  t.notOk(d.spec?.replicas, 'with autoscaling on, the HPA owns the replica count');
  const fixed = byKind(rendered('no-autoscaling'), 'Deployment')[0];
  t.equal(fixed?.spec?.replicas, 3, 'without autoscaling: replicas 3');
});

t.test(
  'the chart renders a PDB, an autoscaling/v2 HPA, a Service, a NetworkPolicy that allows egress to DNS, PostgreSQL, Redis and the upstreams only, and an optional ServiceMonitor',
  async (t) => {
    const docs = rendered('default');
    const kinds = docs.map((d) => `${d.apiVersion} ${d.kind}`).sort();
    for (const k of [
      'apps/v1 Deployment',
      'v1 Service',
      'v1 ConfigMap',
      'v1 ServiceAccount',
      'policy/v1 PodDisruptionBudget',
      'autoscaling/v2 HorizontalPodAutoscaler',
      'networking.k8s.io/v1 NetworkPolicy',
    ]) {
      t.ok(kinds.includes(k), `renders ${k}`);
    }
    t.notOk(kinds.includes('monitoring.coreos.com/v1 ServiceMonitor'), 'no ServiceMonitor by default');
    const hpa = byKind(docs, 'HorizontalPodAutoscaler')[0] ?? {};
    t.equal(hpa.spec?.minReplicas, 3);
    t.equal(byKind(docs, 'PodDisruptionBudget')[0]?.spec?.maxUnavailable, 1);

    const np = byKind(docs, 'NetworkPolicy')[0] ?? {};
    t.same(np.spec?.policyTypes, ['Ingress', 'Egress'], 'both directions are restricted');
    const egress: Obj[] = np.spec?.egress ?? [];
    t.ok(
      egress.every((r) => Array.isArray(r.to) && r.to.length > 0),
      'every egress rule names its peers (none open to everywhere)',
    );
    t.same(
      egress.map((r) => r.ports.map((p: Obj) => `${p.port}/${p.protocol}`).join(',')),
      ['53/UDP,53/TCP', '5432/TCP', '6379/TCP'],
      'default egress: DNS, PostgreSQL, Redis',
    );

    const all = rendered('all-features');
    const allNp = byKind(all, 'NetworkPolicy')[0] ?? {};
    const upstream = (allNp.spec?.egress ?? []).find((r: Obj) => r.to?.[0]?.ipBlock?.cidr === '140.82.112.0/20');
    t.same(upstream?.ports, [{ port: 443, protocol: 'TCP' }], 'a configured upstream gets its own rule');
    t.ok((allNp.spec?.ingress?.[0]?.from ?? []).length === 2, 'ingress limited to the listed peers');
    const sm = byKind(all, 'ServiceMonitor')[0] ?? {};
    t.equal(sm.spec?.endpoints?.[0]?.path, '/metrics', 'ServiceMonitor scrapes /metrics');
    t.equal(sm.spec?.endpoints?.[0]?.authorization?.credentials?.name, 'bulwark-metrics-token', 'with the metrics key from a Secret');
    const allPod = byKind(all, 'Deployment')[0]?.spec?.template?.spec ?? {};
    t.equal(allPod.initContainers?.[0]?.name, 'policy-fetch', 'policy from a URL: an init container fetches it');
    t.ok(
      (allPod.containers?.[0]?.volumeMounts ?? []).some((m: Obj) => m.mountPath === '/etc/bulwark/policy' && m.readOnly),
      'and the server reads it read-only',
    );
    const cmPolicy = (byKind(rendered('no-autoscaling'), 'Deployment')[0]?.spec?.template?.spec?.volumes ?? []).find((v: Obj) => v.name === 'policy');
    t.equal(cmPolicy?.configMap?.name, 'bulwark-policy', 'policy from a ConfigMap');
  },
);

t.test('the configuration the chart and compose write is one Bulwark accepts', async (t) => {
  const data = fs.mkdtempSync(path.join(out, 'data-'));
  const env = {
    POD_NAME: 'bulwark-7d9f-abcde',
    POD_IP: '10.0.0.7',
    BULWARK_REPLICA: 'bulwark-1',
    KEYS_DATABASE_URL: 'postgres://app:pw@postgres/bulwark',
    AUDIT_DATABASE_URL: 'postgres://app:pw@postgres/bulwark',
    DATABASE_URL: 'postgres://reader:pw@postgres/demo',
    REDIS_URL: 'redis://:pw@redis:6379/0',
    GITHUB_TOKEN: 'x',
  };
  for (const name of ['default', 'all-features', 'no-autoscaling']) {
    const cm = byKind(rendered(name), 'ConfigMap')[0];
    const file = path.join(out, `${name}.bulwark.yaml`);
    fs.writeFileSync(file, String(cm?.data?.['bulwark.yaml'] ?? ''));
    const { config } = loadConfig({ file, env, roots: [data] });
    t.equal(config.auth.http, 'api_key', `${name}: API keys required`);
    t.ok(config.server.http.allowed_hosts.includes('10.0.0.7:8765'), `${name}: the pod IP is an allowed Host (Prometheus scrapes pods by address)`);
    t.ok(config.server.http.allowed_hosts.includes('localhost:8765'), `${name}: the probes' Host is allowed`);
    if (name === 'default') {
      t.equal(config.audit.stream, 'bulwark-7d9f-abcde', 'each pod writes its own audit stream');
      t.equal(config.limits.store, 'redis');
    }
  }
  const composeCfg = loadConfig({ file: path.join(ROOT, 'deploy', 'compose', 'bulwark.yaml'), env, roots: [data] }).config;
  t.equal(composeCfg.auth.store, 'postgres', 'compose replicas share the PostgreSQL key store');
  t.equal(composeCfg.limits.store, 'redis', 'and Redis rate limits');
  t.equal(composeCfg.audit.stream, 'bulwark-1', 'and write one audit stream each');
  t.ok(composeCfg.server.http.allowed_hosts.includes('bulwark-1:8765'), 'Prometheus reaches the replica by name');
  const image = loadConfig({ file: path.join(ROOT, 'deploy', 'docker', 'bulwark.yaml'), env: {}, roots: [data] }).config;
  t.equal(image.audit.path, '/var/lib/bulwark/audit/audit.jsonl', "the image's audit log is on its volume");
});

t.test('the validator refuses broken manifests', async (t) => {
  const s = schemas();
  const deployment = structuredClone(byKind(rendered('default'), 'Deployment')[0] ?? {});
  t.ok(deployment.kind, 'a rendered Deployment to break');
  const ok = validator.validateKubernetes(s, [writeDocs('good.yaml', [deployment])]);
  t.same(
    ok.map((r) => r.ok),
    [true],
    'the rendered Deployment passes',
  );

  const cases: [string, (d: Obj) => void, RegExp][] = [
    ['replicas "three"', (d) => (d.spec.replicas = 'three'), /\/spec\/replicas: must be integer/],
    [
      'an unknown field under securityContext',
      (d) => (d.spec.template.spec.containers[0].securityContext.dropEverything = true),
      /securityContext: unknown field "dropEverything"/,
    ],
    [
      'readOnlyRootFilesystem "yes"',
      (d) => (d.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = 'yes'),
      /readOnlyRootFilesystem: must be boolean/,
    ],
    ['a container without a name', (d) => delete d.spec.template.spec.containers[0].name, /containers\/0: must have required property 'name'/],
    ['a misspelt field', (d) => (d.spec.template.spec.containers[0].livenesProbe = {}), /unknown field "livenesProbe"/],
    ['an unknown kind', (d) => (d.kind = 'Deploymint'), /no schema for apiVersion apps\/v1 kind Deploymint/],
    ['a port out of range', (d) => (d.spec.template.spec.containers[0].ports[0].containerPort = 2 ** 33), /containerPort: must match format "int32"/],
  ];
  for (const [what, breakIt, expect] of cases) {
    const d = structuredClone(deployment);
    breakIt(d);
    const [r] = validator.validateKubernetes(s, [writeDocs('bad.yaml', [d])]);
    t.equal(r?.ok, false, `refuses ${what}`);
    t.match((r?.errors ?? []).join('\n'), expect, `and says why (${what})`);
  }
  const sm = structuredClone(byKind(rendered('all-features'), 'ServiceMonitor')[0] ?? {});
  t.same(
    validator.validateKubernetes(s, [writeDocs('sm.yaml', [sm])]).map((r) => r.ok),
    [true],
    'the rendered ServiceMonitor passes',
  );
  sm.spec.endpoints[0].interval = '30 seconds';
  sm.spec.endpoints[0].bearerToken = 'x';
  const [smBad] = validator.validateKubernetes(s, [writeDocs('sm-bad.yaml', [sm])]);
  t.equal(smBad?.ok, false, 'refuses a ServiceMonitor with a bad interval and an unknown field');
  t.match(
    smBad?.errors.join('\n'),
    /interval: must match pattern[\s\S]*unknown field "bearerToken"|unknown field "bearerToken"[\s\S]*interval: must match pattern/,
  );

  const composeFile = path.join(out, 'compose-bad.yaml');
  const compose = parse(fs.readFileSync(path.join(ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as Obj;
  compose.services['bulwark-1'].replicas_of = 3;
  compose.services['bulwark-2'].read_only = ['maybe'];
  fs.writeFileSync(composeFile, JSON.stringify(compose));
  const [c] = validator.validateCompose({ schema: s.compose, env: path.join(out, 'compose.env') }, composeFile);
  t.equal(c?.ok, false, 'the compose check refuses an unknown service key and a non-boolean read_only');
  t.match(c?.errors.join('\n'), /\/services\/bulwark-1: unknown field "replicas_of"/);
  t.match(c?.errors.join('\n'), /\/services\/bulwark-2\/read_only: must be/);
});

t.test('compose.yaml: three replicas behind the balancer, each scraped by Prometheus, sharing PostgreSQL and Redis', async (t) => {
  const compose = parse(fs.readFileSync(path.join(ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as Obj;
  const services: Obj = compose.services ?? {};
  const replicas = Object.keys(services).filter((n) => /^bulwark-\d+$/.test(n));
  t.same(replicas, ['bulwark-1', 'bulwark-2', 'bulwark-3'], 'three Bulwark replicas');
  for (const name of replicas) {
    const s = services[name];
    t.match(s.image, /bulwark/, `${name}: the Bulwark image`);
    t.equal(s.read_only, true, `${name}: read-only root file system`);
    t.same(s.cap_drop, ['ALL'], `${name}: no capabilities`);
    t.equal(s.environment?.BULWARK_REPLICA, name, `${name}: knows its name (audit stream, Host)`);
    t.ok(s.depends_on?.postgres && s.depends_on?.redis, `${name}: waits for PostgreSQL and Redis`);
    t.ok(
      (s.volumes ?? []).some((v: string) => v.endsWith(':/var/lib/bulwark/audit')),
      `${name}: its own audit volume`,
    );
  }
  for (const svc of ['lb', 'postgres', 'redis', 'prometheus', 'grafana', 'bulwark-init']) t.ok(services[svc], `service ${svc}`);

  const haproxy = fs.readFileSync(path.join(ROOT, 'deploy', 'compose', 'haproxy.cfg'), 'utf8');
  const servers = [...haproxy.matchAll(/^\s*server\s+(\S+)\s+(\S+)\s.*\bcheck\b/gm)].map((m) => m[2]);
  t.same(
    servers,
    replicas.map((r) => `${r}:8765`),
    'the balancer sends to each replica, with health checks',
  );
  t.match(haproxy, /http-check send meth GET uri \/ready ver HTTP\/1\.1 hdr Host localhost:8765/, 'checking /ready with an allowed Host');
  t.ok(
    (services.lb.volumes ?? []).some((v: string) => v.startsWith('./deploy/compose/haproxy.cfg:')),
    'the balancer mounts that file',
  );

  const prom = parse(fs.readFileSync(path.join(ROOT, 'deploy', 'compose', 'prometheus.yml'), 'utf8')) as Obj;
  const job = (prom.scrape_configs ?? []).find((j: Obj) => j.job_name === 'bulwark') ?? {};
  t.same(
    (job.static_configs ?? []).flatMap((c: Obj) => c.targets),
    replicas.map((r) => `${r}:8765`),
    'Prometheus scrapes every replica directly',
  );
  t.equal(job.metrics_path, '/metrics');
  const tokenFile: string = job.authorization?.credentials_file ?? '';
  t.equal(job.authorization?.type, 'Bearer', 'with a bearer (the metrics role)');
  const promMount = (services.prometheus.volumes ?? []).find((v: string) => tokenFile.startsWith(`${v.split(':')[1]}/`));
  t.ok(promMount, `the token file ${tokenFile} is on a volume Prometheus mounts`);
  const initVolume = String(promMount ?? '').split(':')[0];
  const init = services['bulwark-init'];
  const initMount = (init.volumes ?? []).find((v: string) => v.startsWith(`${initVolume}:`));
  t.ok(initMount, 'which bulwark-init writes');
  t.equal(init.environment?.TOKEN_FILE, `${String(initMount).split(':')[1]}/${path.basename(tokenFile)}`, 'to the file Prometheus reads');
  t.match(fs.readFileSync(path.join(ROOT, 'deploy', 'compose', 'init', 'metrics-key.mjs'), 'utf8'), /'--roles', 'metrics'/, 'a key with the role metrics');
});

t.test('the Grafana dashboard shows every named metric, through the provisioned data source', async (t) => {
  const source = fs.readFileSync(path.join(ROOT, 'src', 'observability', 'metrics.ts'), 'utf8');
  const names = [...new Set([...source.matchAll(/['"]((?:mcp|bulwark)_[a-z0-9_]+)['"]/g)].map((m) => m[1] as string))].filter((n) => n !== 'bulwark_');
  t.ok(names.length >= 15, `metric names found in metrics.ts (${names.length})`);
  const dash = JSON.parse(fs.readFileSync(path.join(ROOT, 'deploy', 'compose', 'grafana', 'dashboards', 'bulwark.json'), 'utf8')) as Obj;
  const exprs = (dash.panels as Obj[]).flatMap((p) => (p.targets ?? []).map((x: Obj) => String(x.expr))).join('\n');
  for (const n of names) t.match(exprs, new RegExp(`\\b${n}(_bucket|_total)?\\b`), `a panel shows ${n}`);
  const ds = parse(fs.readFileSync(path.join(ROOT, 'deploy', 'compose', 'grafana', 'provisioning', 'datasources', 'prometheus.yaml'), 'utf8')) as Obj;
  const uid = ds.datasources?.[0]?.uid;
  t.ok(
    (dash.panels as Obj[]).filter((p) => p.type !== 'row').every((p) => p.datasource?.uid === uid),
    `every panel uses the provisioned data source (${uid})`,
  );
  const provider = parse(fs.readFileSync(path.join(ROOT, 'deploy', 'compose', 'grafana', 'provisioning', 'dashboards', 'bulwark.yaml'), 'utf8')) as Obj;
  const compose = parse(fs.readFileSync(path.join(ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as Obj;
  t.ok(
    (compose.services.grafana.volumes as string[]).some((v) => v.split(':')[1] === provider.providers?.[0]?.options?.path),
    'the dashboard folder is mounted where provisioning looks',
  );
});

t.test('the Dockerfile: Node 24 runtime with no shell, non-root, HEALTHCHECK without curl, the committed policy, an audit volume', async (t) => {
  const df = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const stages = [...df.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)].map((m) => [m[1], m[2]] as [string, string | undefined]);
  t.same(stages[0], ['${BASE_IMAGE}', 'toolchain'], 'the build stages start from BASE_IMAGE');
  t.same(stages.at(-1), ['scratch', 'runtime'], 'the runtime stage is FROM scratch (no shell, no package manager)');
  const names = new Set(stages.map(([, name]) => name));
  t.ok(
    stages.slice(1, -1).every(([from]) => names.has(from)),
    'every other stage builds on a stage of this file (one base image to provide)',
  );
  t.match(df, /^ARG BASE_IMAGE=/m, 'the base image is an argument (scripts/image-build.sh passes a local one)');
  t.match(df, /^ARG NODE_VERSION=24\./m, 'Node 24');
  t.match(df, /"node@\$\{NODE_VERSION\}"/, "from the npm registry's node package");
  t.match(df, /isolated-vm@\$\{ISOLATED_VM_VERSION\}/, 'isolated-vm replaced after npm ci');
  t.match(df, /^ARG ISOLATED_VM_VERSION=7\./m, 'by the Node 24 line (7.x)');
  const runtime = df.slice(df.search(/^FROM scratch/m));
  t.match(runtime, /^USER 10001:10001$/m, 'a numeric non-root user');
  t.notMatch(runtime, /^RUN /m, 'nothing runs in the runtime stage (there is no shell)');
  t.match(runtime, /^HEALTHCHECK .*\n?\s*CMD \["\/usr\/local\/bin\/node", "-e", ".*\/health/m, 'HEALTHCHECK in exec form: node asks /health');
  const instructions = df
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('#'))
    .join('\n');
  t.notMatch(instructions, /\b(curl|wget)\b/, 'no curl or wget');
  t.match(runtime, /^ENTRYPOINT \["\/usr\/local\/bin\/node", "\/app\/bin\/bulwark\.js"\]$/m, 'exec-form entrypoint');
  t.match(runtime, /^VOLUME \[.*"\/var\/lib\/bulwark\/audit"/m, 'the audit log is a volume');
  t.match(df, /COPY policies\/policy\.wasm policies\/data\.json/, 'the committed policy wasm and data');
  const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
  for (const p of ['.bulwark', 'node_modules', 'dist', '.git']) t.ok(ignore.includes(p), `.dockerignore keeps ${p} out of the build context`);
});

t.test('the chart fetches a policy bundle from a URL only when its sha256 matches', async (t) => {
  const dir = fs.mkdtempSync(path.join(out, 'bundle-'));
  fs.copyFileSync(path.join(ROOT, 'policies', 'policy.wasm'), path.join(dir, 'policy.wasm'));
  fs.copyFileSync(path.join(ROOT, 'policies', 'data.json'), path.join(dir, 'data.json'));
  const tgz = path.join(out, 'bundle.tar.gz');
  t.equal(spawnSync('tar', ['-czf', tgz, '-C', dir, './policy.wasm', './data.json']).status, 0, 'a bundle like `opa build` makes');
  const body = fs.readFileSync(tgz);
  const sha = crypto.createHash('sha256').update(body).digest('hex');
  const server = http.createServer((_req, res) => res.end(body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const script = path.join(ROOT, 'deploy', 'helm', 'bulwark', 'files', 'fetch-policy.mjs');
  // Asynchronous: the bundle server runs in this process.
  const run = (want: string, outDir: string) =>
    new Promise<{ code: number | null; text: string }>((resolve) => {
      const env = { ...process.env, BUNDLE_URL: `http://127.0.0.1:${port}/bundle.tar.gz`, BUNDLE_SHA256: want, OUT_DIR: outDir };
      execFile(process.execPath, [script], { env }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, text: `${stdout}${stderr}` }),
      );
    });
  const good = path.join(out, 'policy-good');
  const ok = await run(sha, good);
  t.equal(ok.code, 0, ok.text);
  t.same(fs.readFileSync(path.join(good, 'policy.wasm')), fs.readFileSync(path.join(ROOT, 'policies', 'policy.wasm')), 'policy.wasm written as served');
  t.same(JSON.parse(fs.readFileSync(path.join(good, 'data.json'), 'utf8')), JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')));
  const bad = path.join(out, 'policy-bad');
  const refused = await run('0'.repeat(64), bad);
  t.equal(refused.code, 1, 'a bundle with another sha256 is refused');
  t.match(refused.text, /sha256 mismatch/);
  t.notOk(fs.existsSync(path.join(bad, 'policy.wasm')), 'and nothing is written');
});
