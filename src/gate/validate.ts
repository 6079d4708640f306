import { deny, fail, pass, type Denial, type Verdict } from '../core/denial.js';
import type { GateDeps } from './deps.js';
import type { Authenticated, Validated } from '../core/call.js';
import type { ToolDefinition } from '../tools/types.js';
import type { Known } from './known.js';

export const UNKNOWN_TOOL_REASON = 'tool.unknown';

/**
 * Levels of objects and arrays an argument document may have (the arguments object is level 1).
 * No tool's schema comes near it; a JSON parser accepts far deeper documents, and every recursive
 * step after this one (schema, hashing, policy input) would otherwise be a stack to blow.
 */
export const MAX_ARGS_DEPTH = 64;

/** A UTF-16 surrogate not part of a pair: valid in a JS string and in JSON text, not in UTF-8. */
const LONE_SURROGATE = /\p{Cs}/u;
const LONE_SURROGATE_ALL = /\p{Cs}/gu;

/** Byte length of the JSON form. */
function argsBytes(args: unknown): number {
  const json = JSON.stringify(args);
  return json === undefined ? 0 : Buffer.byteLength(json);
}

/** Where a node sits, built only when something there is refused. */
interface Place {
  readonly parent: Place | undefined;
  readonly key: string | number;
}

function pathOf(place: Place | undefined): string {
  const keys: (string | number)[] = [];
  for (let p = place; p; p = p.parent) keys.push(p.key);
  let out = '(arguments)';
  for (const k of keys.reverse()) out += typeof k === 'number' ? `[${k}]` : `.${k}`;
  // A cut must not split a surrogate pair: the message goes to the client, where half a pair is
  // not text (the audit record keeps the denial's code and reasons, not its message).
  return out.length > 120 ? `${out.slice(0, 117).replace(/[\uD800-\uDBFF]$/, '')}...` : out;
}

function loneSurrogate(place: Place, isKey: boolean): string {
  return `${isKey ? 'A key' : 'A string'} in the arguments holds an unpaired UTF-16 surrogate (at ${pathOf(place)}).`;
}

/**
 * Depth and well-formed strings (keys too), without recursion: the document may be nested far
 * deeper than the stack allows. Stops at the first problem. Where it is costs an object per node,
 * so it is only tracked when there is a problem to describe (a second walk).
 */
export function checkShape(args: object): Denial | undefined {
  return walk(args, false) && walk(args, true);
}

function walk(args: object, describe: boolean): Denial | undefined {
  const values: object[] = [args];
  const depths: number[] = [1];
  const places: (Place | undefined)[] = [undefined];
  const found = (reason: 'input.too_deep' | 'input.lone_surrogate', message: () => string): Denial =>
    deny('invalid_input', describe ? message() : '', [reason]);
  while (values.length > 0) {
    const value = values.pop() as object;
    const depth = depths.pop() as number;
    const place = places.pop();
    if (depth > MAX_ARGS_DEPTH) return found('input.too_deep', () => `Arguments nest deeper than ${MAX_ARGS_DEPTH} levels (at ${pathOf(place)}).`);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const v: unknown = value[i];
        if (typeof v === 'string') {
          if (LONE_SURROGATE.test(v)) return found('input.lone_surrogate', () => loneSurrogate({ parent: place, key: i }, false));
        } else if (v !== null && typeof v === 'object') {
          values.push(v);
          depths.push(depth + 1);
          places.push(describe ? { parent: place, key: i } : undefined);
        }
      }
      continue;
    }
    for (const key of Object.keys(value)) {
      if (LONE_SURROGATE.test(key))
        return found('input.lone_surrogate', () => loneSurrogate({ parent: place, key: key.replace(LONE_SURROGATE_ALL, '\uFFFD') }, true));
      const v: unknown = (value as Record<string, unknown>)[key];
      if (typeof v === 'string') {
        if (LONE_SURROGATE.test(v)) return found('input.lone_surrogate', () => loneSurrogate({ parent: place, key }, false));
      } else if (v !== null && typeof v === 'object') {
        values.push(v);
        depths.push(depth + 1);
        places.push(describe ? { parent: place, key } : undefined);
      }
    }
  }
  return undefined;
}

/** `tool`: the definition the gate looked up for the call's name as it entered (none: no such tool). */
export function validate(call: Authenticated, tool: ToolDefinition | undefined, deps: GateDeps): Verdict<Known<Validated>> {
  if (!tool) return fail(deny('invalid_input', `Unknown tool: ${JSON.stringify(call.tool).slice(0, 80)}`, [UNKNOWN_TOOL_REASON]));
  const raw = call.args === undefined ? {} : call.args;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return fail(deny('invalid_input', 'Tool arguments must be a JSON object.', ['input.not_object']));
  }
  const shape = checkShape(raw);
  if (shape) return fail(shape);
  const bytes = argsBytes(raw);
  const cap = deps.config.limits.max_args_bytes;
  if (bytes > cap) return fail(deny('invalid_input', `Arguments are ${bytes} bytes; the cap is ${cap}.`, ['input.too_large']));
  const parsed = tool.input.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 10).map((i) => `${i.path.length ? i.path.join('.') : '(arguments)'}: ${i.message}`);
    return fail(deny('invalid_input', `Invalid arguments for ${tool.name}: ${problems.join('; ')}`, ['input.schema']));
  }
  return pass({ call: { ...call, args: parsed.data, argsBytes: bytes }, tool });
}
