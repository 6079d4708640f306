/** The JSON Schema types a `type` keyword may name (draft-07 §6.1.1). */
const JSON_TYPES: ReadonlySet<string> = new Set(['string', 'number', 'integer', 'boolean', 'null', 'array', 'object']);

/** `{type: X}` with nothing else that constrains (an empty `items` or `additionalProperties` admits anything). */
function bareType(branch: unknown): string | undefined {
  if (branch === null || typeof branch !== 'object' || Array.isArray(branch)) return undefined;
  const { type, items, additionalProperties, ...rest } = branch as Record<string, unknown>;
  if (typeof type !== 'string' || !JSON_TYPES.has(type) || Object.keys(rest).length) return undefined;
  const empty = (v: unknown): boolean => v === undefined || v === true || (v !== null && typeof v === 'object' && !Array.isArray(v) && !Object.keys(v).length);
  return empty(items) && empty(additionalProperties) ? type : undefined;
}

/**
 * Each property whose schema is an `anyOf` of bare types becomes one `type: [...]`, the form
 * schema-driven clients read: zod-to-json-schema writes a JSON-value union (run_javascript's
 * `input`) as `anyOf`, and a client that finds no `type` falls back to sending a string, so
 * `[1,2,3]` arrived as "[1,2,3]". The two schemas admit exactly the same values.
 */
export function collapseTypeUnions(schema: object): Record<string, unknown> {
  const { properties, ...rest } = schema as { properties?: Record<string, unknown> };
  if (!properties) return { ...rest };
  const out: Record<string, unknown> = {};
  for (const [key, prop] of Object.entries(properties)) {
    const { anyOf, ...others } = (prop ?? {}) as { anyOf?: unknown };
    const types = Array.isArray(anyOf) ? anyOf.map(bareType) : [];
    out[key] = types.length && types.every((x): x is string => x !== undefined) && !('type' in others) ? { type: types, ...others } : prop;
  }
  return { ...rest, properties: out };
}
