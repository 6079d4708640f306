/**
 * Bearer-token MCP clients and small readers for what the server answers: the denial object of a
 * tool result, and samples of the Prometheus text on /metrics.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

export async function bearerClient(url: string, token: string): Promise<Client> {
  const client = new Client({ name: 'bulwark-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  return client;
}

export interface ToolError {
  readonly code: string;
  readonly message: string;
  readonly reasons: string[];
  readonly request_id: string;
  readonly retry_after_s?: number;
}

interface CallResult {
  readonly isError?: unknown;
  readonly structuredContent?: unknown;
  readonly _meta?: unknown;
}

/** The denial of a tool result, or undefined when the call succeeded. */
export function errorOf(r: CallResult): ToolError | undefined {
  if (!r.isError) return undefined;
  const error = (r.structuredContent as { error?: ToolError } | undefined)?.error;
  if (!error) throw new Error(`isError without structuredContent.error: ${JSON.stringify(r)}`);
  return error;
}

/** The request id of a tool result, allowed or denied (it names the call's audit record). */
export function requestIdOf(r: CallResult): string {
  const denied = errorOf(r);
  if (denied) return denied.request_id;
  const id = (r._meta as Record<string, unknown> | undefined)?.['bulwark/request_id'];
  if (typeof id !== 'string') throw new Error(`result without a request id: ${JSON.stringify(r)}`);
  return id;
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parse the Prometheus text exposition format (samples only; comments skipped). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    const raw = m[3] as string;
    out.push({ name: m[1] as string, labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return out;
}

/** Samples of `name` whose labels include `labels` (all of them when omitted). */
export function samples(all: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The value of the one sample of `name` with exactly `labels` (0 when the series is absent). */
export function valueOf(all: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const exact = all.filter(
    (s) => s.name === name && Object.keys(s.labels).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (exact.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${exact.length} samples`);
  return exact[0]?.value ?? 0;
}
