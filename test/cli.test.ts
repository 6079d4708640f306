import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { cleanChildEnv } from './helpers/child-env.js';
import { BIN, ROOT } from './helpers/fixtures.js';

// The dispatcher's contract (README "Exit codes"): 0 ok, 1 a check failed, 2 usage or config
// error; help asked for goes to stdout, help shown for a mistake goes to stderr.
const bulwark = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: cleanChildEnv() });

t.test('--version prints the version written in package.json', async (t) => {
  const pkg: { version: string } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const r = bulwark('--version');
  t.equal(r.status, 0);
  t.equal(r.stdout, `${pkg.version}\n`);
});

t.test('help: asked for on stdout (exit 0), for a missing or unknown command on stderr (exit 2)', async (t) => {
  for (const ask of ['help', '--help', '-h']) {
    const r = bulwark(ask);
    t.equal(r.status, 0, ask);
    t.match(r.stdout, /^bulwark — a security-hardened MCP server\n/, ask);
    t.match(r.stdout, /doctor +Check config/);
    t.equal(r.stderr, '');
  }
  const bare = bulwark();
  t.equal(bare.status, 2);
  t.equal(bare.stdout, '');
  t.match(bare.stderr, /^bulwark — a security-hardened MCP server\n/);
  const unknown = bulwark('frobnicate');
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /^bulwark: unknown command frobnicate\nbulwark — /);
});

t.test('each command answers --help on stdout with exit 0', async (t) => {
  const expect: Record<string, RegExp> = {
    serve: /^Usage: bulwark serve /,
    policy: /bulwark policy eval --tool NAME/,
    doctor: /^Usage: bulwark doctor /,
    keys: /bulwark keys create/,
    audit: /bulwark audit verify/,
    witness: /witness/,
  };
  for (const [cmd, text] of Object.entries(expect)) {
    const r = bulwark(cmd, '--help');
    t.equal(r.status, 0, cmd);
    t.match(r.stdout, text, cmd);
  }
});

t.test('usage mistakes are one line on stderr and exit 2', async (t) => {
  const option = bulwark('doctor', '--frobnicate');
  t.equal(option.status, 2);
  t.match(option.stderr, /^bulwark: Unknown option '--frobnicate'/);
  t.equal(option.stderr.trim().split('\n').length, 1, 'no stack trace');

  const noTool = bulwark('policy', 'eval');
  t.equal(noTool.status, 2);
  t.match(noTool.stderr, /bulwark policy eval --tool NAME/, 'the policy help on stderr');

  const badJson = bulwark('policy', 'eval', '--tool', 'read_file', '--args', '{');
  t.equal(badJson.status, 2);
  t.equal(badJson.stderr, 'bulwark policy eval: --args is not valid JSON\n');

  const sub = bulwark('policy', 'frobnicate');
  t.equal(sub.status, 2);
  t.match(sub.stderr, /^bulwark policy: unknown subcommand frobnicate\n/);

  const config = bulwark('policy', 'eval', '--tool', 'read_file', '--config', path.join(ROOT, 'no-such-config.yaml'));
  t.equal(config.status, 2);
  t.match(config.stderr, /^bulwark: invalid configuration:\n {2}- .*no-such-config\.yaml: cannot read \(ENOENT\)/);
});
