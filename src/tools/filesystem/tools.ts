import { z } from 'zod';
import { analysePath, type PathPin } from '../../analysis/path.js';
import { refuse } from '../../core/denial.js';
import type { ReadResult } from '../../../sandbox/fs/read-file.js';
import type { ListResult } from '../../../sandbox/fs/list-directory.js';
import { compileMatcher, type SearchResult } from '../../../sandbox/fs/search-files.js';
import type { InfoResult } from '../../../sandbox/fs/file-info.js';
import type { AnalysisResult, ToolDefinition, ToolEnv } from '../types.js';
import type { Authorised, ExecutionMetrics, Validated } from '../../core/call.js';
import type { PathFacts } from '../../core/facts.js';

// Length caps sit above the analyser's own (4096-byte paths) so that an over-long path reaches the
// analyser and is refused as `path_rejected`, not lost as a schema error.
const pathArg = z.string().max(65_536).describe('Absolute path, or a path relative to the first root.');

const READ_ONLY = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false } as const;

/** What a filesystem tool's analysis produces: the canonical path, and the inode its executor must find again. */
type PathFamily = { readonly path: PathFacts };
type PathPinned = { readonly path: PathPin };

function pathFacts(requested: string, env: ToolEnv, expect: 'file' | 'directory' | 'any', maxFileBytes?: number): AnalysisResult<PathFamily, PathPinned> {
  const a = analysePath(requested, { roots: env.config.filesystem.roots, ...(maxFileBytes === undefined ? {} : { maxFileBytes }) });
  if (expect !== 'any' && a.facts.kind !== expect) {
    refuse('path_rejected', expect === 'file' ? 'The path is a directory, not a file.' : 'The path is a file, not a directory.', [
      expect === 'file' ? 'path.is_directory' : 'path.not_directory',
    ]);
  }
  return { facts: { path: a.facts }, pinned: { path: a.pin } };
}

function pinOf(pinned: PathPinned): PathPin {
  return pinned.path;
}

function canonicalOf(call: { facts: PathFamily }): string {
  return call.facts.path.canonical;
}

/** Run one filesystem op in a permission-confined worker, under the call's time cap. */
async function inWorker<T>(env: ToolEnv, call: Authorised, op: string, payload: unknown): Promise<{ value: T; metrics: ExecutionMetrics }> {
  const r = await env.pools.filesystem.run<T>(op, payload, {
    timeoutMs: call.caps.timeoutMs,
    signal: call.context.signal,
    onProgress: call.context.progress,
  });
  const output_bytes = Buffer.byteLength(JSON.stringify(r.value));
  return {
    value: r.value,
    metrics: { duration_ms: round(r.metrics.duration_ms), cpu_ms: round(r.metrics.cpu_ms), heap_bytes: r.metrics.heap_bytes, output_bytes },
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Budgets inside the worker end a little before the kill switch, so a long walk returns truncated results instead of being killed. */
function budgetFor(call: Authorised, ms: number): number {
  return Math.max(1, Math.min(ms, call.caps.timeoutMs - Math.min(250, call.caps.timeoutMs / 4)));
}

const readFileInput = z
  .object({
    path: pathArg,
    encoding: z.enum(['auto', 'text', 'base64']).default('auto'),
    offset: z.number().int().min(0).default(0),
    length: z.number().int().positive().optional(),
  })
  .strict();

export const readFileTool: ToolDefinition<z.output<typeof readFileInput>, PathFamily, PathPinned> = {
  name: 'read_file',
  family: 'filesystem',
  description:
    'Read a file inside the allowed roots. Text is returned as UTF-8; binary files as metadata unless encoding is "base64". Large files can be paged with offset/length.',
  annotations: { title: 'Read file', ...READ_ONLY },
  input: readFileInput,
  outputSchema: {
    type: 'object',
    properties: {
      path: { type: 'string' },
      size: { type: 'integer' },
      mtime: { type: 'string' },
      mime: { type: 'string' },
      sha256: { type: 'string' },
      binary: { type: 'boolean' },
      encoding: { type: 'string', enum: ['utf8', 'base64', 'none'] },
      content: { type: 'string' },
      offset: { type: 'integer' },
      returned_bytes: { type: 'integer' },
      truncated: { type: 'boolean' },
    },
    required: ['path', 'size', 'sha256', 'encoding', 'content', 'truncated'],
  },
  async analyse(call: Validated<z.output<typeof readFileInput>>, env) {
    return pathFacts(call.args.path, env, 'file', env.config.filesystem.max_file_bytes);
  },
  async execute(call, env) {
    const { value: r, metrics } = await inWorker<ReadResult>(env, call, 'read', {
      pin: pinOf(call.pinned),
      canonical: canonicalOf(call),
      maxFileBytes: env.config.filesystem.max_file_bytes,
      maxBytes: call.caps.maxBytes,
      offset: call.args.offset,
      length: call.args.length,
      encoding: call.args.encoding,
    });
    if (call.args.encoding === 'text' && r.binary) {
      refuse('tool_error', 'The file is not UTF-8 text; ask for encoding "base64".', ['file.not_text']);
    }
    // The result names the file relative to its root (issue 17): the server's absolute layout (home
    // folders, mount points) is not the client's business, and the relative form is what it sent.
    const shown = pinOf(call.pinned).components.join('/');
    const text =
      r.encoding === 'none' ? `${shown}: binary file, ${r.size} bytes, ${r.mime}, sha256 ${r.sha256}. Ask for encoding "base64" to get the bytes.` : r.content;
    return { text, structured: { ...r, path: shown }, metrics };
  },
};

const listInput = z
  .object({
    path: pathArg,
    recursive: z.boolean().default(false),
    depth: z.number().int().min(1).max(64).optional(),
    pattern: z.string().min(1).max(1024).optional().describe('Glob matched against entry paths relative to the listed directory.'),
    include_hidden: z.boolean().default(true),
    max_entries: z.number().int().positive().optional(),
  })
  .strict();

export const listDirectoryTool: ToolDefinition<z.output<typeof listInput>, PathFamily, PathPinned> = {
  name: 'list_directory',
  family: 'filesystem',
  description:
    'List a directory inside the allowed roots, optionally recursively (bounded depth and entry count) and filtered by a glob. Links are reported, never followed.',
  annotations: { title: 'List directory', ...READ_ONLY },
  input: listInput,
  outputSchema: {
    type: 'object',
    properties: {
      path: { type: 'string' },
      entries: {
        type: 'array',
        items: {
          type: 'object',
          properties: { path: { type: 'string' }, kind: { type: 'string' }, size: { type: 'integer' }, mtime: { type: 'string' } },
          required: ['path', 'kind'],
        },
      },
      truncated: { type: 'boolean' },
      truncated_reason: { type: 'string' },
    },
    required: ['path', 'entries', 'truncated'],
  },
  async analyse(call, env) {
    return pathFacts(call.args.path, env, 'directory');
  },
  async execute(call, env) {
    const fsCfg = env.config.filesystem;
    const depth = Math.min(call.args.depth ?? (call.args.recursive ? fsCfg.max_depth : 1), fsCfg.max_depth);
    const { value: r, metrics } = await inWorker<ListResult>(env, call, 'list', {
      pin: pinOf(call.pinned),
      canonical: canonicalOf(call),
      depth: Math.max(depth, 1),
      pattern: call.args.pattern,
      includeHidden: call.args.include_hidden,
      maxEntries: Math.min(call.args.max_entries ?? fsCfg.max_entries, fsCfg.max_entries),
      budgetMs: budgetFor(call, call.caps.timeoutMs),
    });
    const lines = r.entries.map(
      (e) => `${e.kind === 'directory' ? '[DIR] ' : e.kind === 'symlink' ? '[LINK]' : e.kind === 'other' ? '[OTHER]' : '[FILE]'} ${e.path}`,
    );
    if (r.truncated) lines.push(`… truncated (${r.truncated_reason})`);
    return { text: lines.join('\n') || '(empty)', structured: { ...r }, metrics };
  },
};

const searchInput = z
  .object({
    path: pathArg,
    query: z.string().min(1).max(4096),
    regex: z.boolean().default(false),
    case_sensitive: z.boolean().default(false),
    pattern: z.string().min(1).max(1024).optional(),
    include_hidden: z.boolean().default(false),
    max_results: z.number().int().positive().optional(),
  })
  .strict();

export const searchFilesTool: ToolDefinition<z.output<typeof searchInput>, PathFamily, PathPinned> = {
  name: 'search_files',
  family: 'filesystem',
  description: 'Search text files under a directory for a substring or an RE2 regular expression (linear time), within a time and size budget.',
  annotations: { title: 'Search files', ...READ_ONLY },
  input: searchInput,
  outputSchema: {
    type: 'object',
    properties: {
      path: { type: 'string' },
      matches: {
        type: 'array',
        items: {
          type: 'object',
          properties: { path: { type: 'string' }, line: { type: 'integer' }, column: { type: 'integer' }, text: { type: 'string' } },
          required: ['path', 'line', 'text'],
        },
      },
      files_scanned: { type: 'integer' },
      skipped: { type: 'object' },
      truncated: { type: 'boolean' },
      truncated_reason: { type: 'string' },
    },
    required: ['path', 'matches', 'truncated'],
  },
  async analyse(call, env) {
    // Compile once here so a bad pattern is refused before the policy and before any file is opened.
    compileMatcher(call.args.query, call.args.regex, call.args.case_sensitive).dispose();
    return pathFacts(call.args.path, env, 'directory');
  },
  async execute(call, env) {
    const s = env.config.filesystem.search;
    const { value: r, metrics } = await inWorker<SearchResult>(env, call, 'search', {
      pin: pinOf(call.pinned),
      canonical: canonicalOf(call),
      query: call.args.query,
      regex: call.args.regex,
      caseSensitive: call.args.case_sensitive,
      pattern: call.args.pattern,
      includeHidden: call.args.include_hidden,
      maxDepth: env.config.filesystem.max_depth,
      maxResults: Math.min(call.args.max_results ?? s.max_results, s.max_results),
      maxFileBytes: s.max_file_bytes,
      maxFiles: s.max_files,
      maxBytes: call.caps.maxBytes,
      budgetMs: budgetFor(call, s.time_budget_ms),
      blockedExtensions: [...env.blockedExtensions],
      blockedNames: [...env.blockedNames],
    });
    const lines = r.matches.map((m) => `${m.path}:${m.line}:${m.column}: ${m.text}`);
    if (r.truncated) lines.push(`… truncated (${r.truncated_reason})`);
    return { text: lines.join('\n') || `No matches in ${r.files_scanned} files.`, structured: { ...r }, metrics };
  },
};

const infoInput = z.object({ path: pathArg }).strict();

export const fileInfoTool: ToolDefinition<z.output<typeof infoInput>, PathFamily, PathPinned> = {
  name: 'file_info',
  family: 'filesystem',
  description: 'Metadata of a file or directory inside the allowed roots: kind, size, times, mode, link count, MIME type and sha256.',
  annotations: { title: 'File info', ...READ_ONLY },
  input: infoInput,
  outputSchema: {
    type: 'object',
    properties: {
      path: { type: 'string' },
      kind: { type: 'string' },
      size: { type: 'integer' },
      mtime: { type: 'string' },
      ctime: { type: 'string' },
      mode: { type: 'string' },
      nlink: { type: 'integer' },
      mime: { type: 'string' },
      sha256: { type: 'string' },
    },
    required: ['path', 'kind', 'size'],
  },
  async analyse(call, env) {
    return pathFacts(call.args.path, env, 'any');
  },
  async execute(call, env) {
    const { value: r, metrics } = await inWorker<InfoResult>(env, call, 'info', {
      pin: pinOf(call.pinned),
      canonical: canonicalOf(call),
      maxFileBytes: env.config.filesystem.max_file_bytes,
    });
    return { text: JSON.stringify(r, null, 2), structured: { ...r }, metrics };
  },
};

export const filesystemTools = [readFileTool, listDirectoryTool, searchFilesTool, fileInfoTool] as const;
