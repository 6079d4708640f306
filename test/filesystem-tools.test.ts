/**
 * Legitimate behaviour of the four filesystem tools through the real gate (policy wasm, audit log):
 * read_file, list_directory, search_files, file_info. Every call made here is also checked against
 * its audit record.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t, { type Test } from 'tap';
import { BIN, makeSandbox, readAudit, SECRET, type Sandbox } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { outcomeToResult } from '../src/server/surface.js';
import type { GateOutcome } from '../src/core/call.js';

const sha256 = (data: string | Uint8Array) => crypto.createHash('sha256').update(data).digest('hex');

interface Session {
  readonly sb: Sandbox;
  readonly gate: InProcessGate;
  call(tool: string, args: Record<string, unknown>): Promise<GateOutcome>;
}

/**
 * A sandbox and a gate; every outcome is remembered and, at teardown, matched against its audit
 * record (status, code, decision, sequence number, result hash).
 */
async function session(t: Test, extra: Record<string, unknown> = {}): Promise<Session> {
  const sb = makeSandbox(extra);
  const outcomes: GateOutcome[] = [];
  let gate: InProcessGate | undefined;
  t.teardown(async () => {
    await gate?.close();
    sb.cleanup();
  });
  gate = await inProcessGate(sb.configPath);
  const g = gate;
  const s: Session = {
    sb,
    gate: g,
    call: async (tool, args) => {
      const o = await g.call(tool, args);
      outcomes.push(o);
      return o;
    },
  };
  auditChecks.set(t, { sb, outcomes });
  return s;
}

const auditChecks = new Map<Test, { sb: Sandbox; outcomes: GateOutcome[] }>();

/** Each outcome has exactly one audit record that says the same thing. */
function checkAudit(t: Test): void {
  const entry = auditChecks.get(t);
  if (!entry) return;
  const records = readAudit(entry.sb.auditPath);
  t.equal(records.length, entry.outcomes.length, 'one audit record per call');
  for (const o of entry.outcomes) {
    const rec = records.filter((r) => r.request_id === o.requestId);
    t.equal(rec.length, 1, `${o.tool}: audited once`);
    const r = rec[0];
    if (!r) continue;
    t.equal(r.tool, o.tool, `${o.tool}: audited tool name`);
    t.equal(r.outcome.status, o.status, `${o.tool}: audited status ${o.status}`);
    t.equal(r.outcome.code, o.denial?.code ?? null, `${o.tool}: audited code ${o.denial?.code ?? null}`);
    t.equal(r.seq, o.auditSeq, `${o.tool}: the outcome names its audit record`);
    if (o.decision) t.equal(r.decision?.allow, o.decision.allow, `${o.tool}: audited decision`);
    else t.equal(r.decision, null, `${o.tool}: no decision recorded when none was made`);
    if (o.status === 'ok') {
      t.equal(r.decision?.allow, true, `${o.tool}: an executed call was allowed`);
      t.equal(r.outcome.result_sha256, sha256(JSON.stringify(o.result?.structured)), `${o.tool}: audited result hash`);
    } else {
      t.equal(r.outcome.result_sha256, null, `${o.tool}: no result hash for a refused call`);
    }
  }
  t.notOk(fs.readFileSync(entry.sb.auditPath, 'utf8').includes(SECRET), 'no secret in the audit log');
}

function test(name: string, fn: (t: Test) => Promise<void>): void {
  t.test(name, async (t) => {
    await fn(t);
    checkAudit(t);
  });
}

function ok(t: Test, o: GateOutcome, label: string): Record<string, any> {
  t.equal(o.status, 'ok', `${label}: ok ${o.denial ? JSON.stringify(o.denial) : ''}`);
  t.notOk(outcomeToResult(o).isError, `${label}: not an MCP error`);
  return (o.result?.structured ?? {}) as Record<string, any>;
}

function denied(t: Test, o: GateOutcome, code: string, reason: string, label: string): void {
  t.equal(o.denial?.code, code, `${label}: ${code}`);
  t.ok(o.denial?.reasons.includes(reason), `${label}: ${reason} in ${JSON.stringify(o.denial?.reasons)}`);
  t.notOk(o.result, `${label}: no result`);
  t.equal(outcomeToResult(o).isError, true, `${label}: MCP error`);
}

// ---------------------------------------------------------------------------------------------
// read_file
// ---------------------------------------------------------------------------------------------

test('read_file: text with size, sha256, mime and the root-relative path', async (t) => {
  const { sb, call } = await session(t);
  const file = path.join(sb.root, 'hello.txt');
  const st = fs.statSync(file);
  const o = await call('read_file', { path: 'hello.txt' });
  const r = ok(t, o, 'read hello.txt');
  t.equal(o.result?.text, 'hello, world\n');
  t.same(r, {
    // Issue 17: relative to the root, never the server's absolute path.
    path: 'hello.txt',
    size: 13,
    mtime: st.mtime.toISOString(),
    mime: 'text/plain',
    sha256: sha256('hello, world\n'),
    binary: false,
    encoding: 'utf8',
    content: 'hello, world\n',
    offset: 0,
    returned_bytes: 13,
    truncated: false,
  });
  const mcp = outcomeToResult(o);
  t.same(mcp.content, [{ type: 'text', text: 'hello, world\n' }]);
  t.equal((mcp.structuredContent as { sha256: string }).sha256, sha256('hello, world\n'));

  const md = ok(t, await call('read_file', { path: 'sub/notes.md' }), 'read notes.md');
  t.equal(md.mime, 'text/markdown');
  const json = ok(t, await call('read_file', { path: path.join(sb.root, 'sub/deeper/data.json') }), 'read data.json by absolute path');
  t.equal(json.mime, 'application/json');
  t.equal(json.content, '{"k": 1}\n');
  t.equal(json.path, 'sub/deeper/data.json', 'asked by absolute path, answered relative to the root');
  t.notOk(JSON.stringify(json).includes(sb.root), "the server's root appears nowhere in the result");
  fs.writeFileSync(path.join(sb.root, 'README'), 'no extension\n');
  t.equal(ok(t, await call('read_file', { path: 'README' }), 'read README').mime, 'text/plain', 'text without an extension is text/plain');
  fs.writeFileSync(path.join(sb.root, 'utf8.txt'), 'grüße, 世界 🎉\n');
  const u = ok(t, await call('read_file', { path: 'utf8.txt', encoding: 'text' }), 'read utf8.txt');
  t.equal(u.content, 'grüße, 世界 🎉\n');
  t.equal(u.size, Buffer.byteLength('grüße, 世界 🎉\n'));

  denied(t, await call('read_file', { path: 'sub' }), 'path_rejected', 'path.is_directory', 'read a directory');
  denied(t, await call('read_file', { path: 'missing.txt' }), 'path_rejected', 'path.not_found', 'read a missing file');
  denied(t, await call('read_file', { path: 'hello.txt', encoding: 'utf16' }), 'invalid_input', 'input.schema', 'unknown encoding');
  denied(t, await call('read_file', { path: 'hello.txt', offset: -1 }), 'invalid_input', 'input.schema', 'negative offset');
  denied(t, await call('read_file', { path: 'hello.txt', extra: true }), 'invalid_input', 'input.schema', 'unknown argument');
});

test('read_file: base64 returns the exact bytes; binary is metadata unless base64 is asked for', async (t) => {
  const { sb, call } = await session(t);
  const b64 = ok(t, await call('read_file', { path: 'hello.txt', encoding: 'base64' }), 'base64 of text');
  t.equal(b64.encoding, 'base64');
  t.equal(Buffer.from(b64.content, 'base64').toString(), 'hello, world\n');
  t.equal(b64.binary, false);

  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]), crypto.randomBytes(2000)]);
  fs.writeFileSync(path.join(sb.root, 'img.png'), png);
  const meta = await call('read_file', { path: 'img.png' });
  const m = ok(t, meta, 'auto on a binary file');
  t.equal(m.binary, true);
  t.equal(m.encoding, 'none');
  t.equal(m.content, '');
  t.equal(m.returned_bytes, 0);
  t.equal(m.size, png.length);
  t.equal(m.mime, 'image/png');
  t.equal(m.sha256, sha256(png));
  t.match(meta.result?.text, /binary file, 2012 bytes, image\/png/);
  t.match(meta.result?.text, new RegExp(sha256(png)));

  const raw = ok(t, await call('read_file', { path: 'img.png', encoding: 'base64' }), 'base64 of a binary file');
  t.equal(raw.encoding, 'base64');
  t.equal(raw.binary, true);
  t.ok(Buffer.from(raw.content, 'base64').equals(png), 'the decoded bytes are the file');
  t.equal(raw.returned_bytes, png.length);

  const asText = await call('read_file', { path: 'img.png', encoding: 'text' });
  t.equal(asText.status, 'error');
  denied(t, asText, 'tool_error', 'file.not_text', 'encoding text on a binary file');

  // Invalid UTF-8 without NUL bytes is binary too; unknown extension → application/octet-stream.
  fs.writeFileSync(path.join(sb.root, 'latin1.bin'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
  const l = ok(t, await call('read_file', { path: 'latin1.bin' }), 'invalid UTF-8');
  t.equal(l.binary, true);
  t.equal(l.encoding, 'none');
  t.equal(l.mime, 'application/octet-stream');

  // A larger random file round-trips through base64 with the right hash.
  const blob = crypto.randomBytes(200_000);
  fs.writeFileSync(path.join(sb.root, 'blob.bin'), blob);
  const big = ok(t, await call('read_file', { path: 'blob.bin', encoding: 'base64' }), 'base64 of 200 kB');
  t.ok(Buffer.from(big.content, 'base64').equals(blob));
  t.equal(big.sha256, sha256(blob));
  t.equal(big.truncated, false);
});

test('read_file: offset/length paging', async (t) => {
  const { sb, call } = await session(t);
  const abc = 'abcdefghijklmnopqrstuvwxyz';
  fs.writeFileSync(path.join(sb.root, 'abc.txt'), abc);
  const p1 = ok(t, await call('read_file', { path: 'abc.txt', offset: 5, length: 10 }), 'offset 5 length 10');
  t.equal(p1.content, 'fghijklmno');
  t.equal(p1.offset, 5);
  t.equal(p1.returned_bytes, 10);
  t.equal(p1.size, 26, 'size is the whole file');
  t.equal(p1.sha256, sha256(abc), 'sha256 is of the whole file');
  t.equal(p1.truncated, false, 'an explicit length is not truncation');
  const tail = ok(t, await call('read_file', { path: 'abc.txt', offset: 20, length: 100 }), 'length past the end');
  t.equal(tail.content, 'uvwxyz');
  t.equal(tail.truncated, false);
  const rest = ok(t, await call('read_file', { path: 'abc.txt', offset: 24 }), 'offset without length');
  t.equal(rest.content, 'yz');
  const past = ok(t, await call('read_file', { path: 'abc.txt', offset: 1000 }), 'offset past the end');
  t.equal(past.content, '');
  t.equal(past.returned_bytes, 0);
  const b = ok(t, await call('read_file', { path: 'abc.txt', offset: 3, length: 4, encoding: 'base64' }), 'base64 page');
  t.equal(Buffer.from(b.content, 'base64').toString(), 'defg');
  denied(t, await call('read_file', { path: 'abc.txt', length: 0 }), 'invalid_input', 'input.schema', 'length 0');
  denied(t, await call('read_file', { path: 'abc.txt', offset: 1.5 }), 'invalid_input', 'input.schema', 'fractional offset');
});

test('read_file: content over max_result_bytes is truncated and can be paged whole', async (t) => {
  const { sb, call } = await session(t, { filesystem: { roots: ['data'], max_result_bytes: 1024 } });
  const body = Array.from({ length: 300 }, (_, i) => `line ${i}\n`).join('');
  t.ok(body.length > 2048);
  fs.writeFileSync(path.join(sb.root, 'long.txt'), body);
  const first = ok(t, await call('read_file', { path: 'long.txt' }), 'first page');
  t.equal(first.truncated, true, 'truncated flag');
  t.equal(first.returned_bytes, 1024);
  t.equal(first.content, body.slice(0, 1024));
  t.equal(first.size, body.length, 'size still reports the whole file');
  t.equal(first.sha256, sha256(body), 'sha256 of the whole file');
  let got = first.content as string;
  let offset = first.returned_bytes as number;
  let pages = 1;
  for (;;) {
    const p = ok(t, await call('read_file', { path: 'long.txt', offset }), `page at ${offset}`);
    got += p.content;
    offset += p.returned_bytes;
    pages++;
    t.ok(p.returned_bytes <= 1024, 'no page exceeds the cap');
    if (!p.truncated) break;
    if (pages > 10) break;
  }
  t.equal(got, body, 'the pages make up the file');
  t.equal(pages, Math.ceil(body.length / 1024));
  // base64 is capped on the bytes, before encoding.
  const b = ok(t, await call('read_file', { path: 'long.txt', encoding: 'base64' }), 'base64 capped');
  t.equal(Buffer.from(b.content, 'base64').length, 1024);
  t.equal(b.truncated, true);
  // The cap never cuts a character in half: it backs off to the last whole one.
  const wide = `a${'é'.repeat(1000)}`;
  fs.writeFileSync(path.join(sb.root, 'wide.txt'), wide);
  const w = ok(t, await call('read_file', { path: 'wide.txt' }), 'multi-byte cut');
  t.equal(w.binary, false, 'still text');
  t.equal(w.encoding, 'utf8');
  t.equal(w.returned_bytes, 1023);
  t.equal(w.content, `a${'é'.repeat(511)}`);
  t.equal(w.truncated, true);
  const w2 = ok(t, await call('read_file', { path: 'wide.txt', offset: w.returned_bytes }), 'next multi-byte page');
  t.equal(w2.content, 'é'.repeat(489), 'the rest: 978 bytes, whole characters');
  t.equal(w2.truncated, false);
});

// ---------------------------------------------------------------------------------------------
// list_directory
// ---------------------------------------------------------------------------------------------

type Entry = { path: string; kind: string; size: number; mtime: string };
const entriesOf = (r: Record<string, any>) => r.entries as Entry[];
const pathsOf = (r: Record<string, any>) => entriesOf(r).map((e) => e.path);

test('list_directory: flat, recursive, depth', async (t) => {
  const { sb, call } = await session(t);
  const flat = ok(t, await call('list_directory', { path: '.' }), 'flat');
  t.equal(flat.path, sb.root);
  t.equal(flat.truncated, false);
  const hello = entriesOf(flat).find((e) => e.path === 'hello.txt');
  t.same(
    entriesOf(flat).map((e) => [e.path, e.kind]),
    [
      ['hello.txt', 'file'],
      ['sub', 'directory'],
    ],
  );
  t.equal(hello?.size, 13);
  t.equal(hello?.mtime, fs.statSync(path.join(sb.root, 'hello.txt')).mtime.toISOString());

  const rec = ok(t, await call('list_directory', { path: '.', recursive: true }), 'recursive');
  t.same(pathsOf(rec), ['hello.txt', 'sub', 'sub/deeper', 'sub/deeper/data.json', 'sub/notes.md']);
  t.equal(entriesOf(rec).find((e) => e.path === 'sub/deeper')?.kind, 'directory');

  const d2 = ok(t, await call('list_directory', { path: '.', recursive: true, depth: 2 }), 'depth 2');
  t.same(pathsOf(d2), ['hello.txt', 'sub', 'sub/deeper', 'sub/notes.md']);
  const sub = ok(t, await call('list_directory', { path: 'sub' }), 'a subfolder');
  t.same(pathsOf(sub), ['deeper', 'notes.md'], 'paths are relative to the listed folder');
  t.equal(sub.path, path.join(sb.root, 'sub'));

  const text = (await call('list_directory', { path: '.' })).result?.text;
  t.equal(text, '[FILE] hello.txt\n[DIR]  sub');

  denied(t, await call('list_directory', { path: 'hello.txt' }), 'path_rejected', 'path.not_directory', 'list a file');
  denied(t, await call('list_directory', { path: '.', depth: 0 }), 'invalid_input', 'input.schema', 'depth 0');
  denied(t, await call('list_directory', { path: '.', depth: 65 }), 'invalid_input', 'input.schema', 'depth 65');
});

test('list_directory: glob pattern and include_hidden', async (t) => {
  const { sb, call } = await session(t);
  fs.writeFileSync(path.join(sb.root, '.hidden.txt'), 'h\n');
  fs.mkdirSync(path.join(sb.root, '.hdir'));
  fs.writeFileSync(path.join(sb.root, '.hdir', 'inner.txt'), 'i\n');
  fs.writeFileSync(path.join(sb.root, 'sub', 'other.txt'), 'o\n');
  const md = ok(t, await call('list_directory', { path: '.', recursive: true, pattern: '**/*.md' }), 'glob **/*.md');
  t.same(pathsOf(md), ['sub/notes.md']);
  const txt = ok(t, await call('list_directory', { path: '.', recursive: true, pattern: '*.txt', include_hidden: false }), 'glob *.txt');
  t.same(pathsOf(txt), ['hello.txt'], '* does not cross folders');
  const anyTxt = ok(t, await call('list_directory', { path: '.', recursive: true, pattern: '**/*.txt', include_hidden: false }), 'glob **/*.txt');
  t.same(pathsOf(anyTxt), ['hello.txt', 'sub/other.txt']);
  const json = ok(t, await call('list_directory', { path: '.', recursive: true, pattern: 'sub/**/*.json' }), 'glob sub/**/*.json');
  t.same(pathsOf(json), ['sub/deeper/data.json']);

  const withHidden = ok(t, await call('list_directory', { path: '.', recursive: true }), 'hidden by default');
  t.ok(pathsOf(withHidden).includes('.hidden.txt'));
  t.ok(pathsOf(withHidden).includes('.hdir/inner.txt'));
  const noHidden = ok(t, await call('list_directory', { path: '.', recursive: true, include_hidden: false }), 'include_hidden false');
  t.notOk(
    pathsOf(noHidden).some((p) => p.startsWith('.') || p.includes('/.')),
    'no hidden entry and nothing below one',
  );
  t.same(pathsOf(noHidden), ['hello.txt', 'sub', 'sub/deeper', 'sub/deeper/data.json', 'sub/notes.md', 'sub/other.txt']);
  const hiddenGlob = ok(t, await call('list_directory', { path: '.', recursive: true, pattern: '**/*.txt', include_hidden: true }), 'glob with hidden');
  t.same(pathsOf(hiddenGlob), ['.hdir/inner.txt', '.hidden.txt', 'hello.txt', 'sub/other.txt']);
});

test('list_directory: max_entries truncates; the configured cap wins over the request', async (t) => {
  const { sb, call } = await session(t, { filesystem: { roots: ['data'], max_entries: 7, max_depth: 2 } });
  fs.mkdirSync(path.join(sb.root, 'many'));
  for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(sb.root, 'many', `f${String(i).padStart(2, '0')}.txt`), `${i}\n`);
  const five = ok(t, await call('list_directory', { path: 'many', max_entries: 5 }), 'max_entries 5');
  t.same(pathsOf(five), ['f00.txt', 'f01.txt', 'f02.txt', 'f03.txt', 'f04.txt']);
  t.equal(five.truncated, true);
  t.equal(five.truncated_reason, 'max_entries');
  t.match((await call('list_directory', { path: 'many', max_entries: 5 })).result?.text, /truncated \(max_entries\)/);
  const asked = ok(t, await call('list_directory', { path: 'many', max_entries: 100 }), 'asking for more than the config allows');
  t.equal(entriesOf(asked).length, 7, 'filesystem.max_entries caps the request');
  t.equal(asked.truncated, true);
  const exact = ok(t, await call('list_directory', { path: 'sub', max_entries: 2 }), 'exactly as many as allowed');
  t.equal(exact.truncated, false, 'not truncated when everything fit');
  // filesystem.max_depth caps recursion.
  const deep = ok(t, await call('list_directory', { path: '.', recursive: true, depth: 64, pattern: 'sub/**' }), 'depth capped by max_depth');
  t.same(pathsOf(deep), ['sub', 'sub/deeper', 'sub/notes.md'], 'sub/deeper/data.json is at depth 3, past max_depth 2');
  denied(t, await call('list_directory', { path: 'many', max_entries: 0 }), 'invalid_input', 'input.schema', 'max_entries 0');
});

test('list_directory: links are reported as symlink and never followed', async (t) => {
  const { sb, call } = await session(t);
  fs.mkdirSync(path.join(sb.outside, 'more'));
  fs.writeFileSync(path.join(sb.outside, 'more', 'deep-secret.txt'), `${SECRET}\n`);
  fs.symlinkSync(sb.outside, path.join(sb.root, 'escape'));
  fs.symlinkSync(path.join(sb.outside, 'secret.txt'), path.join(sb.root, 'flink'));
  fs.symlinkSync('hello.txt', path.join(sb.root, 'inlink'));
  fs.symlinkSync('sub', path.join(sb.root, 'sublink'));
  const rec = ok(t, await call('list_directory', { path: '.', recursive: true, depth: 10 }), 'recursive with links');
  const byPath = new Map(entriesOf(rec).map((e) => [e.path, e]));
  for (const name of ['escape', 'flink', 'inlink', 'sublink']) {
    t.equal(byPath.get(name)?.kind, 'symlink', `${name} is a symlink entry`);
    t.equal(byPath.get(name)?.size, 0, `${name}: no size of the target`);
  }
  t.notOk(
    pathsOf(rec).some((p) => /^(escape|sublink|flink|inlink)\//.test(p)),
    'nothing listed below a link',
  );
  t.notOk(
    pathsOf(rec).some((p) => p.includes('secret')),
    'no outside name',
  );
  t.notOk(JSON.stringify(rec).includes(SECRET));
  t.match((await call('list_directory', { path: '.' })).result?.text, /\[LINK\] escape/);
  // Listing through a link that stays inside resolves it (the analyser's canonical path).
  const through = ok(t, await call('list_directory', { path: 'sublink' }), 'list through an inside link');
  t.equal(through.path, path.join(sb.root, 'sub'));
  t.same(pathsOf(through), ['deeper', 'notes.md']);
  denied(t, await call('list_directory', { path: 'escape' }), 'path_rejected', 'path.symlink_escape', 'list the escaping link');
});

// ---------------------------------------------------------------------------------------------
// search_files
// ---------------------------------------------------------------------------------------------

type Match = { path: string; line: number; column: number; text: string };
const matchesOf = (r: Record<string, any>) => r.matches as Match[];

test('search_files: substring, case-insensitive by default', async (t) => {
  const { sb, call } = await session(t);
  const r = ok(t, await call('search_files', { path: '.', query: 'NEEDLE' }), 'NEEDLE');
  t.same(matchesOf(r), [{ path: 'sub/notes.md', line: 3, column: 6, text: 'beta needle gamma' }]);
  t.equal(r.path, sb.root);
  t.equal(r.truncated, false);
  t.equal(r.files_scanned, 3);
  t.same(matchesOf(ok(t, await call('search_files', { path: '.', query: 'NEEDLE', case_sensitive: true }), 'case-sensitive miss')), []);
  t.equal(matchesOf(ok(t, await call('search_files', { path: '.', query: 'needle', case_sensitive: true }), 'case-sensitive hit')).length, 1);
  const inSub = ok(t, await call('search_files', { path: 'sub', query: 'alpha' }), 'relative to the searched folder');
  t.same(matchesOf(inSub), [{ path: 'notes.md', line: 2, column: 1, text: 'alpha' }]);
  const none = await call('search_files', { path: '.', query: 'zzz-no-such-text' });
  t.same(matchesOf(ok(t, none, 'no match')), []);
  t.match(none.result?.text, /No matches in 3 files/);

  // Several matches: every line, with line and column; long lines are shown cut.
  fs.writeFileSync(path.join(sb.root, 'multi.txt'), `x\nfoo here\n  and FOO there\n${'y'.repeat(1000)}foo\n`);
  const multi = ok(t, await call('search_files', { path: '.', query: 'foo', pattern: 'multi.txt' }), 'multi');
  t.same(
    matchesOf(multi).map((m) => [m.line, m.column]),
    [
      [2, 1],
      [3, 7],
      [4, 1001],
    ],
  );
  t.equal(matchesOf(multi)[2]?.text.length, 300, 'a long line is cut to 300 characters');
  t.equal(matchesOf(ok(t, await call('search_files', { path: '.', query: 'alpha', pattern: '**/*.md' }), 'glob')).length, 1);
  t.same(matchesOf(ok(t, await call('search_files', { path: '.', query: 'alpha', pattern: '*.txt' }), 'glob that excludes')), []);

  denied(t, await call('search_files', { path: 'hello.txt', query: 'x' }), 'path_rejected', 'path.not_directory', 'search a file');
  denied(t, await call('search_files', { path: '.', query: '' }), 'invalid_input', 'input.schema', 'empty query');
});

test('search_files: RE2 regular expressions; invalid and backtracking patterns', async (t) => {
  const { sb, call } = await session(t);
  const re = ok(t, await call('search_files', { path: '.', query: 'ne+dle\\s+g', regex: true }), 'regex');
  t.same(
    matchesOf(re).map((m) => [m.path, m.line, m.column]),
    [['sub/notes.md', 3, 6]],
  );
  t.equal(matchesOf(ok(t, await call('search_files', { path: '.', query: 'NE+DLE', regex: true }), 'regex, case-insensitive')).length, 1);
  t.same(matchesOf(ok(t, await call('search_files', { path: '.', query: 'NE+DLE', regex: true, case_sensitive: true }), 'regex, case-sensitive')), []);
  t.same(
    matchesOf(ok(t, await call('search_files', { path: '.', query: '^# N', regex: true }), 'anchored')).map((m) => m.line),
    [1],
  );
  // Regex syntax is not a substring: '.' matches any character only in regex mode.
  t.same(matchesOf(ok(t, await call('search_files', { path: '.', query: 'h.llo' }), 'substring h.llo')), []);
  t.equal(matchesOf(ok(t, await call('search_files', { path: '.', query: 'h.llo', regex: true }), 'regex h.llo')).length, 1);

  for (const bad of ['(', 'a[', '(?=lookahead)', '(a)\\1', '*oops', 'x{2,1}']) {
    const o = await call('search_files', { path: '.', query: bad, regex: true });
    denied(t, o, 'invalid_input', 'search.invalid_regex', `invalid regex ${bad}`);
    t.equal(o.decision, undefined, `${bad}: refused before the policy`);
  }
  // The same text is a fine substring.
  t.equal(ok(t, await call('search_files', { path: '.', query: '(', regex: false }), 'substring (').truncated, false);

  fs.writeFileSync(path.join(sb.root, 'redos.txt'), `${'a'.repeat(100_000)}!\n`);
  fs.writeFileSync(path.join(sb.root, 'redos2.txt'), `${'x'.repeat(50_000)}\n`);
  for (const [pattern, hits] of [
    ['(a+)+$', 0],
    ['(a|a)*b', 0],
    ['(a+)+!', 1],
    ['(x+x+)+y', 0],
    ['^(a|aa)+$', 0],
  ] as const) {
    const started = performance.now();
    const o = await call('search_files', { path: '.', query: pattern, regex: true, pattern: 'redos*.txt' });
    const ms = performance.now() - started;
    const r = ok(t, o, `catastrophic pattern ${pattern}`);
    t.ok(ms < 5000, `${pattern} completed in ${Math.round(ms)} ms`);
    t.equal(r.truncated, false, `${pattern}: finished, not cut by the time budget`);
    t.equal(matchesOf(r).length, hits, `${pattern}: ${hits} match(es)`);
  }
});

test('search_files: max_results truncation; the configured cap wins', async (t) => {
  const { sb, call } = await session(t, { filesystem: { roots: ['data'], search: { max_results: 8 } } });
  fs.writeFileSync(path.join(sb.root, 'hits.txt'), Array.from({ length: 50 }, (_, i) => `hit ${i}`).join('\n'));
  const five = ok(t, await call('search_files', { path: '.', query: 'hit', max_results: 5 }), 'max_results 5');
  t.same(
    matchesOf(five).map((m) => m.line),
    [1, 2, 3, 4, 5],
  );
  t.equal(five.truncated, true);
  t.equal(five.truncated_reason, 'max_results');
  const capped = ok(t, await call('search_files', { path: '.', query: 'hit', max_results: 100 }), 'more than the config allows');
  t.equal(matchesOf(capped).length, 8);
  t.equal(capped.truncated_reason, 'max_results');
  const exact = ok(t, await call('search_files', { path: '.', query: 'needle', max_results: 1 }), 'exactly one');
  t.equal(exact.truncated, false);
});

test('search_files: binary, hidden, hard-linked, too-large and blocked-extension files are skipped', async (t) => {
  const { sb, call } = await session(t, { filesystem: { roots: ['data'], search: { max_file_bytes: 4096 } } });
  const r = (n: string) => path.join(sb.root, n);
  fs.writeFileSync(r('bin.dat'), Buffer.concat([Buffer.from('needle\n'), Buffer.from([0, 1, 2, 3])]));
  fs.writeFileSync(r('.hidden.txt'), 'hidden needle\n');
  fs.writeFileSync(r('big.txt'), `needle\n${'z'.repeat(5000)}\n`);
  fs.writeFileSync(r('server.pem'), '-----BEGIN needle-----\n');
  fs.writeFileSync(r('private.KEY'), 'needle key\n');
  fs.writeFileSync(r('store.p12'), 'needle p12\n');
  fs.writeFileSync(r('ok.txt'), 'plain needle\n');
  fs.linkSync(r('ok.txt'), r('ok-hardlink.txt'));
  const s = ok(t, await call('search_files', { path: '.', query: 'needle' }), 'search with skips');
  t.same(
    matchesOf(s)
      .map((m) => m.path)
      .sort(),
    ['sub/notes.md'],
    'only the plain, unlinked text file matches',
  );
  t.match(s.skipped, { binary: 1, too_large: 1, hardlinked: 2, blocked_extension: 3, changed: 0 });
  const hidden = ok(t, await call('search_files', { path: '.', query: 'needle', include_hidden: true }), 'include_hidden');
  t.same(
    matchesOf(hidden)
      .map((m) => m.path)
      .sort(),
    ['.hidden.txt', 'sub/notes.md'],
  );
  // read_file refuses the same files by policy.
  denied(t, await call('read_file', { path: 'server.pem' }), 'policy_denied', 'path.blocked_extension', 'read server.pem');
  denied(t, await call('read_file', { path: 'private.KEY' }), 'policy_denied', 'path.blocked_extension', 'read private.KEY');
  denied(t, await call('read_file', { path: 'ok-hardlink.txt' }), 'policy_denied', 'path.hardlink', 'read a hard link');
});

test('search_files never returns content that read_file refuses by policy (blocked names)', async (t) => {
  const { sb, call } = await session(t);
  const r = (n: string) => path.join(sb.root, n);
  fs.writeFileSync(r('id_rsa'), '-----BEGIN OPENSSH PRIVATE KEY----- needle\n');
  fs.writeFileSync(r('credentials.json'), '{"password": "needle-hunter2"}\n');
  fs.writeFileSync(r('secrets.json'), '{"token": "needle-t0ken"}\n');
  fs.writeFileSync(r('.env'), 'DB_PASSWORD=needle-pw\n');
  fs.mkdirSync(r('.ssh'));
  fs.writeFileSync(r('.ssh/config'), 'Host needle\n');
  fs.mkdirSync(r('.git'));
  fs.writeFileSync(r('.git/config'), '[credential] needle\n');
  const blocked = ['id_rsa', 'credentials.json', 'secrets.json', '.env', '.ssh/config', '.git/config'];
  for (const p of blocked) {
    const o = await call('read_file', { path: p });
    t.equal(o.denial?.code, 'policy_denied', `read_file ${p} is refused by policy (${JSON.stringify(o.denial?.reasons)})`);
  }
  for (const include_hidden of [false, true]) {
    const s = ok(t, await call('search_files', { path: '.', query: 'needle', include_hidden }), `search include_hidden ${include_hidden}`);
    const leaked = matchesOf(s).filter((m) => blocked.includes(m.path));
    t.same(leaked, [], `include_hidden ${include_hidden}: no match inside a file read_file refuses`);
    t.same(
      matchesOf(s).map((m) => m.path),
      ['sub/notes.md'],
    );
  }
});

// ---------------------------------------------------------------------------------------------
// file_info
// ---------------------------------------------------------------------------------------------

test('file_info: a file and a directory', async (t) => {
  const { sb, call } = await session(t);
  const file = path.join(sb.root, 'hello.txt');
  const st = fs.statSync(file);
  const f = ok(t, await call('file_info', { path: 'hello.txt' }), 'file');
  t.same(f, {
    path: file,
    kind: 'file',
    size: 13,
    mtime: st.mtime.toISOString(),
    ctime: st.ctime.toISOString(),
    mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
    nlink: 1,
    mime: 'text/plain',
    sha256: sha256('hello, world\n'),
  });
  fs.chmodSync(path.join(sb.root, 'sub', 'notes.md'), 0o640);
  const md = ok(t, await call('file_info', { path: 'sub/notes.md' }), 'notes.md');
  t.equal(md.mode, '0640');
  t.equal(md.mime, 'text/markdown');
  t.equal(md.sha256, sha256('# Notes\nalpha\nbeta needle gamma\n'));
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]);
  fs.writeFileSync(path.join(sb.root, 'i.png'), png);
  const p = ok(t, await call('file_info', { path: 'i.png' }), 'png');
  t.equal(p.mime, 'image/png');
  t.equal(p.sha256, sha256(png));

  const dir = path.join(sb.root, 'sub');
  const dst = fs.statSync(dir);
  const d = ok(t, await call('file_info', { path: 'sub' }), 'directory');
  t.equal(d.kind, 'directory');
  t.equal(d.path, dir);
  t.equal(d.size, dst.size);
  t.equal(d.nlink, dst.nlink);
  t.equal(d.mtime, dst.mtime.toISOString());
  t.notOk('sha256' in d, 'no hash for a directory');
  t.notOk('mime' in d, 'no mime for a directory');
  const root = ok(t, await call('file_info', { path: '.' }), 'the root');
  t.equal(root.path, sb.root);
  t.equal(root.kind, 'directory');
  denied(t, await call('file_info', { path: 'nope' }), 'path_rejected', 'path.not_found', 'missing');
});

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

test('every allowed, denied and failed call is in the audit log with its outcome; the chain verifies', async (t) => {
  const { sb, call } = await session(t);
  fs.writeFileSync(path.join(sb.root, 'bin.bin'), Buffer.from([0, 1, 2]));
  fs.linkSync(path.join(sb.outside, 'secret.txt'), path.join(sb.root, 'hl.txt'));
  const cases: [string, Record<string, unknown>, string, string | null][] = [
    ['read_file', { path: 'hello.txt' }, 'ok', null],
    ['list_directory', { path: '.', recursive: true }, 'ok', null],
    ['search_files', { path: '.', query: 'needle' }, 'ok', null],
    ['file_info', { path: 'sub' }, 'ok', null],
    ['read_file', { path: '../outside/secret.txt' }, 'denied', 'path_rejected'],
    ['read_file', { path: 'hl.txt' }, 'denied', 'policy_denied'],
    ['search_files', { path: '.', query: '(', regex: true }, 'denied', 'invalid_input'],
    ['list_directory', { path: '.', bogus: 1 }, 'denied', 'invalid_input'],
    ['read_file', { path: 'bin.bin', encoding: 'text' }, 'error', 'tool_error'],
  ];
  const outcomes: GateOutcome[] = [];
  for (const [tool, args, status, code] of cases) {
    const o = await call(tool, args);
    outcomes.push(o);
    t.equal(o.status, status, `${tool} ${JSON.stringify(args)}: ${status}`);
    t.equal(o.denial?.code ?? null, code);
  }
  const records = readAudit(sb.auditPath);
  const byId = new Map(records.map((r) => [r.request_id as string, r]));
  const [okRead, , , , outside, hard, badRe, badArgs] = outcomes;
  const rec = (o: GateOutcome | undefined) => byId.get(o?.requestId ?? '') ?? {};
  t.equal(rec(okRead).facts?.path?.canonical, path.join(sb.root, 'hello.txt'), 'facts of an allowed call');
  t.equal(rec(okRead).args?.path, 'hello.txt', 'validated arguments are recorded');
  t.same(rec(outside).outcome?.reasons, ['path.outside_root']);
  t.equal(rec(outside).facts, null, 'no facts for a path refused by the analyser');
  t.equal(rec(hard).decision?.allow, false);
  t.same(rec(hard).decision?.reasons, ['path.hardlink']);
  t.equal(rec(hard).facts?.path?.nlink, 2, 'the policy saw the link count');
  t.same(rec(badRe).outcome?.reasons, ['search.invalid_regex']);
  t.same(rec(badArgs).masked, ['args'], 'unvalidated arguments are masked');
  const seqs = records.map((r) => r.seq as number);
  t.same(
    seqs,
    [...seqs].sort((a, b) => a - b),
    'records are in sequence',
  );
  const v = spawnSync(process.execPath, [BIN, 'audit', 'verify', sb.auditPath, '--json'], { encoding: 'utf8' });
  t.equal(v.status, 0, v.stdout + v.stderr);
});
