/**
 * SECURITY.md's threat table and the manifest (test/threats.ts) held to each other, and the
 * manifest held to the test sources: a threat without tests, a renamed or deleted test, or a
 * manifest entry for a threat the document no longer names all fail here.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from './helpers/fixtures.js';
import { THREATS, type ThreatCoverage } from './threats.js';

/** The ids of SECURITY.md's threat table: rows that start `| T<digits> |`. */
function threatIds(securityMd: string): string[] {
  return [...securityMd.matchAll(/^\|\s*(T\d{2,})\s*\|/gm)].map((m) => m[1] as string);
}

interface Titles {
  /** Titles written as plain string literals. */
  readonly exact: ReadonlySet<string>;
  /** Template-literal titles: their text before the first `${`. */
  readonly templateStarts: readonly string[];
}

/** The titles of the `t.test(` calls in one test source, as the strings they evaluate to. */
function testTitles(source: string): Titles {
  const exact = new Set<string>();
  const templateStarts: string[] = [];
  for (const m of source.matchAll(/\bt\.test\(\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1/g)) {
    const quote = m[1] as string;
    const body = m[2] as string;
    const text = (s: string) => s.replace(/\\(.)/g, '$1');
    if (quote === '`' && body.includes('${')) templateStarts.push(text(body.slice(0, body.indexOf('${'))));
    else exact.add(text(body));
  }
  return { exact, templateStarts };
}

/** A template's title is named by a literal start of at least this many characters. */
const MIN_TEMPLATE_START = 20;

function hasTitle(titles: Titles, title: string): boolean {
  if (titles.exact.has(title)) return true;
  return title.length >= MIN_TEMPLATE_START && titles.templateStarts.some((start) => start.startsWith(title));
}

/** Every disagreement between the document, the manifest and the test sources, in words. */
function manifestProblems(securityMd: string, manifest: readonly ThreatCoverage[], readTest: (file: string) => string | undefined): string[] {
  const problems: string[] = [];
  const documented = threatIds(securityMd);
  if (documented.length === 0) problems.push('SECURITY.md has no threat table (rows starting "| T01 |")');
  const seen = new Set<string>();
  for (const id of documented) {
    if (seen.has(id)) problems.push(`SECURITY.md lists ${id} twice`);
    seen.add(id);
  }
  const mapped = new Set<string>();
  for (const entry of manifest) {
    if (mapped.has(entry.id)) problems.push(`the manifest lists ${entry.id} twice`);
    mapped.add(entry.id);
    if (!seen.has(entry.id)) problems.push(`the manifest maps ${entry.id} (${entry.threat}), which SECURITY.md does not name`);
    const files = Object.entries(entry.tests);
    if (files.length === 0 || files.every(([, titles]) => titles.length === 0)) problems.push(`${entry.id} is mapped to no test`);
    for (const [file, titles] of files) {
      const source = readTest(file);
      if (source === undefined) {
        problems.push(`${entry.id}: test/${file} does not exist`);
        continue;
      }
      const found = testTitles(source);
      for (const title of titles) if (!hasTitle(found, title)) problems.push(`${entry.id}: test/${file} has no test titled ${JSON.stringify(title)}`);
    }
  }
  for (const id of seen) if (!mapped.has(id)) problems.push(`SECURITY.md names ${id}, which the manifest does not map to any test`);
  return problems;
}

function readTestSource(file: string): string | undefined {
  // Only files directly under test/: a manifest entry cannot point elsewhere.
  if (file !== path.basename(file) || !file.endsWith('.ts')) return undefined;
  const p = path.join(ROOT, 'test', file);
  return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : undefined;
}

t.test('every threat SECURITY.md names is mapped to tests that exist, and the manifest names no other threat', async (t) => {
  const doc = fs.readFileSync(path.join(ROOT, 'SECURITY.md'), 'utf8');
  const ids = threatIds(doc);
  t.ok(ids.length >= 10, `SECURITY.md names ${ids.length} threats`);
  t.same(manifestProblems(doc, THREATS, readTestSource), []);
});

t.test('the threats the issue asks for are all in the table', async (t) => {
  const doc = fs.readFileSync(path.join(ROOT, 'SECURITY.md'), 'utf8');
  const rows = doc
    .split('\n')
    .filter((l) => /^\|\s*T\d{2,}\s*\|/.test(l))
    .join('\n')
    .toLowerCase();
  for (const words of [
    'prompt-injected',
    'sql injection',
    'exfiltration',
    'path traversal',
    'symbolic links',
    'toctou',
    'ssrf',
    'dns rebinding',
    'redirect',
    'sandbox escape',
    'resource exhaustion',
    'audit truncation',
    'audit rewrite',
    'key swap',
    'authentication bypass',
    'brute force',
    'policy fail-open',
    'secrets',
    'rate-limit evasion',
  ]) {
    t.ok(rows.includes(words), `the table names ${words}`);
  }
});

t.test('the checker finds what it must', async (t) => {
  const doc = ['| id | threat |', '|---|---|', '| T01 | one |', '| T02 | two |', '| T02 | two again |', ''].join('\n');
  const sources: Record<string, string> = {
    'a.test.ts': [
      "t.test('plain title', async () => {});",
      't.test("it\'s quoted", async () => {});',
      "t.test(`a template title with ${'x'} in it`, async () => {});",
      "  t.test('nested \\'escaped\\' title', async () => {});",
      "// t.test is mentioned in a comment: 'not a title'",
    ].join('\n'),
  };
  const read = (f: string) => sources[f];
  t.same(testTitles(sources['a.test.ts'] as string), {
    exact: new Set(['plain title', "it's quoted", "nested 'escaped' title"]),
    templateStarts: ['a template title with '],
  });
  const manifest: ThreatCoverage[] = [
    { id: 'T01', threat: 'one', tests: { 'a.test.ts': ['plain title', "it's quoted", "nested 'escaped' title", 'a template title with'] } },
    { id: 'T01', threat: 'one again', tests: { 'a.test.ts': ['plain'] } },
    { id: 'T03', threat: 'three', tests: { 'gone.test.ts': ['anything'], 'a.test.ts': ['not a title'] } },
    { id: 'T04', threat: 'four', tests: {} },
  ];
  t.same(manifestProblems(doc, manifest, read), [
    'SECURITY.md lists T02 twice',
    'the manifest lists T01 twice',
    'T01: test/a.test.ts has no test titled "plain"',
    'the manifest maps T03 (three), which SECURITY.md does not name',
    'T03: test/gone.test.ts does not exist',
    'T03: test/a.test.ts has no test titled "not a title"',
    'the manifest maps T04 (four), which SECURITY.md does not name',
    'T04 is mapped to no test',
    'SECURITY.md names T02, which the manifest does not map to any test',
  ]);
  t.same(manifestProblems('no table here', [], read), ['SECURITY.md has no threat table (rows starting "| T01 |")']);
  t.equal(readTestSource('../src/app.ts'), undefined, 'a manifest entry cannot point outside test/');
});
