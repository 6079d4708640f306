import { CanonicalJsonError } from '../audit/canonical-json.js';
import type { Appended } from '../audit/audit-log.js';
import { withoutArgs } from '../audit/record.js';
import type { GateDeps } from './deps.js';

/** Append, and when the fields hold something that cannot be hashed reproducibly, append without it. */
export async function appendRecord(fields: Record<string, unknown>, deps: GateDeps): Promise<Appended> {
  try {
    return await deps.audit.append(fields);
  } catch (err) {
    if (!(err instanceof CanonicalJsonError)) throw err;
    // The arguments (or facts) hold something that cannot be hashed reproducibly: keep the
    // record, drop the unrepresentable part and say so.
    return deps.audit.append({ ...withoutArgs(fields, err.reason), facts: null });
  }
}
