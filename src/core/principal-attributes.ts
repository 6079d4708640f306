/**
 * Principal attributes (issue 13 item 3): verified facts about a caller besides its id, roles and
 * tier, such as a region or a tenant, that the policy reads (`input.principal.attributes`) and row
 * filters take values from (`{"principal": "attributes.region"}`). They come only from a verified
 * credential or from the operator's configuration: an API key's record, an access token's claims
 * named in `auth.oauth.attributes`, the configured stdio/loopback principal. Nothing in a request
 * can set them.
 *
 * The bounds keep an attribute recordable (the audit log canonicalises the policy input) and the
 * policy input small (it is capped, default 32 KiB).
 */
export type AttributeValue = string | readonly string[];
export type PrincipalAttributes = Readonly<Record<string, AttributeValue>>;

export const ATTRIBUTE_NAME = /^[a-z][a-z0-9_]{0,62}$/;
export const MAX_ATTRIBUTES = 16;
export const MAX_ATTRIBUTE_VALUE = 256;
export const MAX_ATTRIBUTE_LIST = 32;
/** The attributes of one principal as JSON, at most. */
export const MAX_ATTRIBUTES_BYTES = 4096;

// A lone surrogate, a control or format character (invisible look-alikes, bidi overrides) cannot be
// recorded faithfully or would be misread by a person reading the record.
const BAD_CHARS = /[\p{Cs}\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

export function wellFormedAttributeValue(v: unknown): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= MAX_ATTRIBUTE_VALUE && !BAD_CHARS.test(v);
}

/** One attribute's value: a string, or a non-empty list of strings. */
export function attributeValueProblem(v: unknown): string | undefined {
  if (Array.isArray(v)) {
    if (v.length === 0 || v.length > MAX_ATTRIBUTE_LIST) return `a list of 1 to ${MAX_ATTRIBUTE_LIST} values`;
    return v.every(wellFormedAttributeValue) ? undefined : `a list of strings of 1 to ${MAX_ATTRIBUTE_VALUE} characters without control characters`;
  }
  return wellFormedAttributeValue(v) ? undefined : `a string of 1 to ${MAX_ATTRIBUTE_VALUE} characters without control characters, or a list of them`;
}

/**
 * Check a set of attributes from a store, a token mapping or the configuration: the problems
 * found (empty when it is well-formed). `undefined` and `null` are no attributes.
 */
export function attributesProblems(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value !== 'object' || Array.isArray(value)) return ['attributes must be an object of name: value'];
  const entries = Object.entries(value);
  const out: string[] = [];
  if (entries.length > MAX_ATTRIBUTES) out.push(`at most ${MAX_ATTRIBUTES} attributes`);
  for (const [name, v] of entries) {
    if (!ATTRIBUTE_NAME.test(name)) out.push(`${JSON.stringify(name.slice(0, 80))}: a name is lower-case [a-z][a-z0-9_]{0,62}`);
    const p = attributeValueProblem(v);
    if (p !== undefined) out.push(`${name.slice(0, 80)}: expected ${p}`);
  }
  if (out.length === 0 && Buffer.byteLength(JSON.stringify(value)) > MAX_ATTRIBUTES_BYTES)
    out.push(`at most ${MAX_ATTRIBUTES_BYTES} bytes of attributes (as JSON)`);
  return out;
}

/** A frozen copy of well-formed attributes (sorted by name), or undefined when there are none. */
export function frozenAttributes(value: unknown): PrincipalAttributes | undefined {
  if (attributesProblems(value).length > 0) throw new Error(`not well-formed principal attributes: ${attributesProblems(value).join('; ')}`);
  if (value === undefined || value === null) return undefined;
  const entries = Object.entries(value as Record<string, AttributeValue>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (entries.length === 0) return undefined;
  return Object.freeze(Object.fromEntries(entries.map(([k, v]) => [k, typeof v === 'string' ? v : Object.freeze([...v])])));
}
