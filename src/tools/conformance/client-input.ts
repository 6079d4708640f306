import type { CallContext, ClientInputRequest } from '../../core/call.js';
import { refuse } from '../../core/denial.js';

/** How long a 2025-11-25 fixture waits for the client's answer (the suite answers at once). */
const ASK_TIMEOUT_MS = 10_000;

export type Answers = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** What a fixture gets back: every answer, or what to send the client before it can go on. */
export type Gathered =
  | { readonly answers: Answers }
  | { readonly needsInput: { readonly inputRequests: Readonly<Record<string, ClientInputRequest>>; readonly state?: Readonly<Record<string, unknown>> } };

function isObject(v: unknown): v is Readonly<Record<string, unknown>> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Whether an untrusted answer has the shape of a result of the request's method (2026-07-28
 * `inputResponses` arrive unchecked): an answer that does not fit counts as no answer, and the
 * fixture asks again (input-required-result-validate-input, -missing-input-response).
 */
export function answersMethod(method: ClientInputRequest['method'], answer: unknown): answer is Readonly<Record<string, unknown>> {
  if (!isObject(answer)) return false;
  switch (method) {
    case 'elicitation/create':
      return answer.action === 'accept' ? isObject(answer.content) : answer.action === 'decline' || answer.action === 'cancel';
    case 'sampling/createMessage':
      return isObject(answer.content) || Array.isArray(answer.content);
    case 'roots/list':
      return Array.isArray(answer.roots);
  }
}

/**
 * The client's answers to `requests`, in either era. 2025-11-25: each is asked in turn on the
 * call's own stream (ctx.client.ask). 2026-07-28: the answers are the retry's `inputResponses`;
 * whatever is missing or malformed is requested (again) as an `input_required` result, with
 * `state` for the gate to seal. Extra keys in `inputResponses` are ignored.
 */
export async function gather(
  ctx: CallContext,
  requests: Readonly<Record<string, ClientInputRequest>>,
  state?: Readonly<Record<string, unknown>>,
): Promise<Gathered> {
  const client = ctx.client;
  if (client?.era === '2026-07-28') {
    const responses = client.inputResponses ?? {};
    const answers: Record<string, Readonly<Record<string, unknown>>> = {};
    const missing: Record<string, ClientInputRequest> = {};
    for (const [key, request] of Object.entries(requests)) {
      const answer = responses[key];
      if (answersMethod(request.method, answer)) answers[key] = answer;
      else missing[key] = request;
    }
    if (Object.keys(missing).length === 0) return { answers };
    return { needsInput: { inputRequests: missing, ...(state ? { state } : {}) } };
  }
  const ask = client?.ask;
  if (!ask) {
    refuse('tool_error', 'This fixture needs to ask the client, and the client cannot be asked (no declared capability or no stream).', [
      'conformance.client_cannot_be_asked',
    ]);
  }
  const answers: Record<string, Readonly<Record<string, unknown>>> = {};
  for (const [key, request] of Object.entries(requests)) {
    answers[key] = await ask(request, { signal: ctx.signal, timeoutMs: Math.min(ASK_TIMEOUT_MS, ctx.deadline?.remainingMs() ?? ASK_TIMEOUT_MS) });
  }
  return { answers };
}

/** The text a sampling answer carries (content is one block or, since 2025-11-25, an array of them). */
export function sampledText(answer: Readonly<Record<string, unknown>>): string {
  const blocks = Array.isArray(answer.content) ? answer.content : [answer.content];
  return blocks
    .map((b) => (isObject(b) && b.type === 'text' && typeof b.text === 'string' ? b.text : ''))
    .join('')
    .slice(0, 1000);
}

/** "action=accept, content={...}" for an elicitation answer. */
export function elicitationSummary(answer: Readonly<Record<string, unknown>>): string {
  return `action=${String(answer.action)}, content=${JSON.stringify(answer.content ?? {}).slice(0, 1000)}`;
}

export function elicitForm(message: string, properties: Readonly<Record<string, unknown>>, required: readonly string[]): ClientInputRequest {
  return { method: 'elicitation/create', params: { message, requestedSchema: { type: 'object', properties, required } } };
}

export function sample(text: string, maxTokens: number): ClientInputRequest {
  return { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text } }], maxTokens } };
}

export const LIST_ROOTS: ClientInputRequest = { method: 'roots/list', params: {} };
