/** The shape of `structuredContent.error` on every refused or failed call (DESIGN.md §1). */
export const DENIAL_SCHEMA = {
  type: 'object',
  properties: {
    code: { type: 'string' },
    message: { type: 'string' },
    reasons: { type: 'array', items: { type: 'string' } },
    request_id: { type: 'string' },
  },
  required: ['code', 'message', 'reasons'],
} as const;

/**
 * Clients validate `structuredContent` against the output schema even when `isError` is set, so
 * each tool's schema admits either its own result or `{ error: Denial }`.
 */
export function withDenialBranch(schema: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const { required, properties, ...rest } = schema as { required?: string[]; properties?: Record<string, unknown> };
  return {
    ...rest,
    type: 'object',
    properties: { ...(properties ?? {}), error: DENIAL_SCHEMA },
    anyOf: [{ required: required ?? [] }, { required: ['error'] }],
  };
}
