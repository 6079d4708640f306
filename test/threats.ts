/**
 * The threat manifest: each threat SECURITY.md names (its "Threats" table, ids T01…) mapped to the
 * tests that cover it, as test file → test titles. test/threats.test.ts holds the two to each
 * other: every id in SECURITY.md is here, every id here is in SECURITY.md, and every named title
 * is a `t.test(` title in that file (for a title built from a template, its literal start).
 * `gaps` says honestly what of the threat no test covers yet.
 */

export interface ThreatCoverage {
  readonly id: string;
  /** Short name, for reading this file; SECURITY.md holds the description. */
  readonly threat: string;
  /** Test file (under test/) → titles of the tests in it that cover the threat. */
  readonly tests: Readonly<Record<string, readonly string[]>>;
  readonly gaps?: readonly string[];
}

export const THREATS: readonly ThreatCoverage[] = [
  {
    id: 'T01',
    threat: 'prompt-injected tool calls',
    tests: {
      'auth-roles-http.test.ts': [
        'tools/list and tools/call for every role and every tool, as the policy data says',
        'a principal whose roles are unknown sees nothing and may call nothing; roles combine as a union',
      ],
      'bad-input.test.ts': ['wrong types, missing fields, unknown fields, oversized arguments: invalid_input, audited'],
      'auth-principal-http.test.ts': ['a lone tools/call: body members and headers do not change the principal'],
      'policy-wasm.test.ts': ['roles decide what is listed and what may be called'],
    },
  },
  {
    id: 'T02',
    threat: 'SQL injection and writes',
    tests: {
      'sql-analysis.test.ts': [
        'the attack corpus: every query is refused with its reason code',
        'every dangerous function is refused in every spelling',
        'property: safe fragments followed by ; and a forbidden statement are always refused',
        'property: arbitrary text yields facts or a DenialError, never another error',
      ],
      'database.test.ts': [
        'the attack corpus is refused and changes nothing',
        'defence in depth: with the analyser bypassed, the role and the protocol still refuse',
      ],
      'sql-leftovers.test.ts': ['backslash attacks are still refused, and the facts are what the server reads'],
      'idioms.test.ts': ['user SQL reaches postgres.js only through the executor, never through the simple protocol'],
    },
  },
  {
    id: 'T03',
    threat: 'data exfiltration through SQL',
    tests: {
      'sql-leftovers-masks.test.ts': [
        'no shape returns a real email or anything derived from one',
        'a database error on a query that reads masked columns withholds the server text',
        'the same shapes on the embedded PGlite demo database leak nothing either',
      ],
      'sql-lineage.test.ts': [
        'the policy decides per column (column_rules in the data) over the lineage',
        'row filters and masks together: lineage on the executed tree',
      ],
      'auth-roles-http.test.ts': [
        'SQL tables differ by role: allow-lists, the deny list; an allowed query may still fail on I/O',
        'redacted columns and row caps differ by role',
      ],
      'sql-analysis.test.ts': ['catalogs: refused by default, collected with allowCatalogs'],
      'database.test.ts': ['list_tables and describe_table show only what the principal may read', 'caps: rows, and the policy: tables and redaction'],
      'sql-views-lineage.test.ts': [
        'masks over lineage through views',
        'views that cannot be followed are refused',
        'rowFilteredViews: a filtered table behind a view',
      ],
      'sql-views-postgres.test.ts': ['the real embedded worker: its catalog with view definitions loads on PGlite and masks hold'],
    },
  },
  {
    id: 'T04',
    threat: 'path traversal',
    tests: {
      'path-attacks.test.ts': [
        '.. chains and absolute paths outside the root are refused by every tool',
        'a sibling folder whose name extends the root name is not inside the root',
        'URL-encoded and other encoded traversal is never decoded',
        'NUL bytes and control characters are refused before any lookup',
        '/proc and /dev paths outside the root are refused as outside',
        'whitespace and quotes are part of the name: never trimmed, never stripped',
      ],
      'idioms.test.ts': ['user paths are never compared with startsWith'],
    },
  },
  {
    id: 'T05',
    threat: 'links and special files planted in a root',
    tests: {
      'path-attacks.test.ts': [
        'links inside the root that point outside are refused; links that stay inside work',
        'a hard link inside the root to the outside secret is refused by policy and skipped by search',
        'a FIFO inside the root is refused quickly and never blocks',
        'a unix socket inside the root is refused',
        'a link inside the root to /dev/zero, and a device node inside the root, are refused',
      ],
      'auth-roles-http.test.ts': ['hard links: only a role that allows them may read a file with two names'],
      'search-blocked.test.ts': ['search_files skips names and extensions the policy blocks'],
    },
  },
  {
    id: 'T06',
    threat: 'TOCTOU swaps between check and read',
    tests: {
      'path-attacks.test.ts': [
        'a file swapped for a link after the check is refused by the read executor',
        'an intermediate directory swapped after the check is refused',
        'the root itself swapped for a link after the check is refused',
        'a FIFO swapped in after the check is refused at once, without blocking',
        'entries swapped for links during a walk are reported as links, never followed',
        'racing: 500 gated reads while a file flips between itself and a link to the secret',
        'racing: the executor alone, 2000 check-then-read cycles against a flipping file',
        'racing: listing and searching while a directory flips between itself and a link outside',
      ],
      'workers.test.ts': ['second wall: with path checks bypassed, the permission model still refuses reads outside the roots'],
    },
  },
  {
    id: 'T07',
    threat: 'SSRF',
    tests: {
      'api-ssrf.test.ts': [
        'IP classification: every special range, IPv4 and IPv6, and the forms that embed IPv4',
        'CIDR ranges and the internal/allowed_cidrs judgement',
        'canonical paths: encodings normalised, nothing resolved',
        'property: every accepted path is canonical, idempotent and free of traversal',
        'SSRF corpus: hostile paths, misconfigured upstreams, resolvers, rebinding, redirects',
        'property: IPv4 forms embedded in IPv6 classify as the address they reach',
      ],
      'idioms.test.ts': ['DNS and sockets only in the URL analyser, the API tools and the transports'],
    },
  },
  {
    id: 'T08',
    threat: 'DNS rebinding and redirects',
    tests: {
      'api-ssrf.test.ts': ['SSRF corpus: hostile paths, misconfigured upstreams, resolvers, rebinding, redirects'],
      'api-server.test.ts': ['HTTPS through a pinned address keeps SNI and the certificate name'],
      'http-transport.test.ts': ['DNS-rebinding defence: unlisted Host and Origin get 403'],
      'protocol-fixes.test.ts': ['every other Origin, and a rebinding Host, stays 403', 'bound to all interfaces, loopback origins are not allowed by default'],
    },
  },
  {
    id: 'T09',
    threat: 'sandbox escape from run_javascript',
    tests: {
      'sandbox-js.test.ts': ['escape attempts find no Node API', 'getters and proxies in the result run inside the isolate, never in the host'],
      'js-intrinsics.test.ts': ['replaced intrinsics neither break nor forge the result', 'console keeps working when Array and JSON methods are replaced'],
      'idioms.test.ts': ['node:vm is not a boundary and appears nowhere'],
    },
  },
  {
    id: 'T10',
    threat: 'resource exhaustion',
    tests: {
      'sandbox-js.test.ts': [
        'memory bombs that take the whole worker process down cost only that process',
        'while a script burns its budget, other calls keep being answered',
        'the caller can only tighten caps',
      ],
      'js-intrinsics.test.ts': ['limits still hold with the new wrapper'],
      'database.test.ts': ['CPU bombs are stopped by the statement timeout; the server keeps serving', 'parser DoS inputs are refused fast'],
      'sql-analysis.test.ts': ['parser DoS: huge and deep inputs are refused fast, and the parser keeps working'],
      'sql-leftovers-cost.test.ts': ['a four-way cross join of large tables is refused before it runs'],
      'plan-limits-default.test.ts': [
        'PostgreSQL: a four-way cross join of 100k-row tables is refused with the estimate, in the answer and the record',
        'embedded PGlite: the same refusals, the same facts, the same exact answers',
      ],
      'path-attacks.test.ts': [
        'a 64 MiB file is refused under the default cap, quickly',
        'a file that grows past the cap after the check is refused while it is read',
      ],
      'api-gateway.test.ts': ['caps: the body streams and is abandoned past max_response_bytes'],
      'workers.test.ts': ['a full pool answers unavailable at once instead of piling up'],
      'fault-workers.test.ts': ['the time cap counts from run(): a call still queued at its cap is answered timeout and never runs'],
      'gate-deadline.test.ts': ['an executor that never answers: the gate answers timeout at the deadline, records once, and aborts the signal'],
      'bad-input-deep.test.ts': ['in process: depth limit and lone surrogates are invalid_input with a reason, each recorded once'],
      'http-transport.test.ts': ['bodies over the cap are refused with 413'],
      'fault-http.test.ts': [
        'slow headers and slow bodies are cut at the configured timeouts',
        'connections past max_connections get 503 with Retry-After; the server serves again after they go',
      ],
    },
  },
  {
    id: 'T11',
    threat: 'audit truncation and rollback',
    tests: {
      'audit-evidence.test.ts': [
        'attack: cut the first 10 of 30 records of an unrotated log → head truncated (with or without a rewritten manifest)',
        'attack: cut the head segments and rewrite the manifest to start later → head truncated',
        'rollback: the report names every record that is gone, up to the largest signed size',
      ],
      'audit-property.test.ts': ['verify accepts every log the writer produces, and rejects every byte flip, line deletion and line swap'],
      'audit-evidence-postgres.test.ts': ['a PostgreSQL stream whose first rows the owner deleted: head truncated, and a signed stream needs a key'],
    },
  },
  {
    id: 'T12',
    threat: 'audit rewrite',
    tests: {
      'audit-property.test.ts': ['verify accepts every log the writer produces, and rejects every byte flip, line deletion and line swap'],
      'audit-evidence.test.ts': ['rewrite plus deleting the checkpoints fails: a signed log with a span longer than its interval and no checkpoint'],
      'audit-postgres.test.ts': [
        'the writer role cannot UPDATE, DELETE or TRUNCATE; the trigger refuses even the owner',
        'verify finds a row an administrator rewrote with the trigger disabled',
      ],
      'audit-merkle.test.ts': [
        'inclusion proofs verify for every leaf of trees of size 1..33, and fail when tampered',
        'consistency proofs verify between every pair of sizes up to 33, and fail when tampered',
      ],
      'witness.test.ts': ['attack: the log host AND the signing key rewrite history; the witness key rejects it, the witness refuses the fork'],
      'witness-postgres.test.ts': [
        'PostgreSQL writer: checkpoints cosigned by a real witness, stored in the table, verify --witness-key; a re-signed rewrite fails',
        'the cosignature table is append-only',
      ],
    },
  },
  {
    id: 'T13',
    threat: 'audit key swap',
    tests: {
      'audit-evidence.test.ts': [
        'trusted keys by default: a replaced checkpoint signature without keys is exit 1, not a warning',
        'a signed prune statement lets a pruned log verify; without it, or forged, it does not',
      ],
      'witness.test.ts': ['k of n: a quorum of witness keys'],
      'audit-log.test.ts': ['checkpoints signed by a retired key still verify when its public key stays listed'],
      'audit-restart.test.ts': [
        'a forged restart record (no key to sign after it) does not end the unsigned span',
        'after a restart, a long unsigned stretch in the new writer’s life still fails',
      ],
    },
  },
  {
    id: 'T14',
    threat: 'a call answered without its record, or a side effect before it',
    tests: {
      'audit.test.ts': ['a failed audit write withholds the result (disk full)'],
      'fault-audit.test.ts': [
        'audit disk full with call_api POSTs in flight, then freed: no side effect before its intent, every call answered, the log resumes by itself',
      ],
      'gate-stage-failures.test.ts': [
        'record: an audit log whose append throws withholds the result, audit_unavailable audit.append_failed',
        'record: an audit log whose append never settles is answered within the bound, audit_unavailable audit.append_timeout',
        'execute: an intent record that cannot be appended is audit_unavailable audit.intent_failed, and the side effect never runs',
      ],
      'audit-report-faults.test.ts': ['an intent without an outcome is reported as outcome unknown by verify and the report; one named by its outcome is not'],
    },
  },
  {
    id: 'T15',
    threat: 'authentication bypass',
    tests: {
      'auth-principal-http.test.ts': [
        'a lone tools/call: body members and headers do not change the principal',
        'extra top-level members are not a JSON-RPC request: refused before any tool runs',
        'without a bearer the same body is refused with 401 and reaches no tool',
      ],
      'auth-jwks-url.test.ts': ['bad signature, wrong audience, wrong issuer, expired and alg none are refused 401 without refetching'],
      'auth-dos.test.ts': ['auth.oauth.algorithms refuses none and HMAC at config validation'],
      'auth-keys.test.ts': ['verify, proof cache, wrong / truncated / other-key secrets, expiry'],
      'auth-http.test.ts': ['keys revoke against the running server: refused within reload_check_ms (1 s) although its proof was cached'],
      'gate-stage-failures.test.ts': ['authenticate: a config whose principals cannot be read is internal_error gate.authenticate_failed'],
      'principal-attributes.test.ts': ['the filter is applied to the principal of the credential, whatever the request carries'],
    },
  },
  {
    id: 'T16',
    threat: 'brute force and authentication DoS',
    tests: {
      'auth-dos.test.ts': [
        'a burst of 48 wrong secrets for one key id counts from the start: at most threshold argon2 runs, the rest 429/503 at once',
        '48 wrong secrets from 48 addresses: argon2 runs one at a time, the excess is refused 503 auth.busy at once',
        'a key id under attack from one address does not lock its holder out from another (no cached proof)',
        '10,000 credential-less requests from one address add a handful of records; discovery still gets its 401',
      ],
      'auth-keys.test.ts': ['lockout: exponential back-off, 429 without argon2, per (key id, address) and per address', 'Lockout is bounded in memory'],
      'auth-http.test.ts': ['lockout over HTTP: 429 with Retry-After once failures pass the threshold'],
      'auth-jwks-url.test.ts': ['bounds on fetches: concurrent first requests share one; failures and invented kids are spaced by the cooldown'],
    },
  },
  {
    id: 'T17',
    threat: 'policy fail-open',
    tests: {
      'policy-wasm.test.ts': ['the engine fails closed', 'shared cases through the compiled wasm'],
      'gate-stage-failures.test.ts': [
        'decide: a policy that throws a plain Error is policy_error policy.evaluation_failed',
        "decide: a policy that throws a PolicyError is policy_error with the error's reason",
        'decide: an allowing decision whose obligations cannot be read is internal_error gate.decide_failed, and nothing runs',
        'execute: a call that carries no decision is refused before any tool code, gate.not_authorised',
      ],
      'gate-deadline.test.ts': ['a stage that hangs past the deadline: answered at the deadline, and the executor never starts'],
    },
  },
  {
    id: 'T18',
    threat: 'gate fail-open under failing stages and dependencies',
    tests: {
      'gate-stage-failures.test.ts': [
        'authenticate: a config whose principals cannot be read is internal_error gate.authenticate_failed',
        'rate_limit: limits that cannot be read are internal_error gate.rate_limit_failed',
        'validate: an input schema whose parse throws is internal_error gate.validate_failed',
        "analyse: an analyser that throws a plain Error is the family's rejection, analysis.failed",
        'analyse: an analyser that rejects with no reason at all gets the same typed answer as one that throws',
        'execute: an executor that throws a plain Error is tool_error tool.failed',
        'execute: an executor that never settles is answered timeout deadline.exceeded at the deadline',
        'execute: a side-effect predicate that throws is internal_error gate.execute_failed, and the executor never starts',
      ],
      'gate-deadline.test.ts': ['an executor stuck on a dependency: answered unavailable, naming it'],
      'fault-redis.test.ts': ['the Redis stores in-process: refused or skipped at once when Redis is gone or frozen, back by themselves'],
      'fault-postgres.test.ts': ['connection-class errors are unavailable; query errors are not'],
      'fault-workers.test.ts': ['a pool whose workers die at start enters a crash loop, refuses calls at once, keeps trying, and heals by itself'],
    },
  },
  {
    id: 'T19',
    threat: 'secrets in results, logs or records',
    tests: {
      'api-gateway.test.ts': ['secrets in configured headers are sent, but never returned, cached or audited'],
      'api-server.test.ts': ['secrets in configured headers never reach results, logs or the audit log'],
      'auth-http.test.ts': ['no secret reaches the logs or the audit log'],
      'sandbox-js.test.ts': ['caps and metrics reach the audit log; code is hashed, not stored'],
    },
  },
  {
    id: 'T20',
    threat: 'rate-limit evasion',
    tests: {
      'rate-limits.test.ts': [
        'per-tool buckets: exact counts, retry_after_s, other tools unaffected',
        'with limits.store: redis, two gates share the principal limit',
      ],
      'rate-limits-redis-processes.test.ts': ['the principal bucket is shared: its capacity in total across both processes, then refused by both'],
      'auth-dos.test.ts': ['an API key principal and a JWT subject with the same id do not share a rate bucket'],
      'api-redis.test.ts': ['a Redis that stops answering fails closed for rate limits'],
      'auth-http.test.ts': ['rate tiers per principal: rate_limited with retry_after_s'],
      'gate-stage-failures.test.ts': ['rate_limit: a rate store whose take() throws is unavailable rate.store_unavailable (retryable)'],
    },
  },
  {
    id: 'T21',
    threat: "hostile recorded strings attacking the auditor's tools",
    tests: {
      'audit-report.test.ts': [
        'the HTML report: verdict, counts, timeline, denials; every value escaped, no scripts or external resources',
        'headless Chromium renders the report: verdict and denial reason in the DOM, the injected script stays text',
      ],
      'approval.test.ts': ['the record: typed when read back, and shown in the HTML report'],
    },
    gaps: ['no test exports a record whose cells look like spreadsheet formulas and checks the CSV prefixes them (src/cli/audit-commands.ts)'],
  },
  {
    id: 'T22',
    threat: 'cross-client leakage',
    tests: {
      'auth-principal-http.test.ts': ['concurrent requests of two principals never see each other’s principal'],
      'api-gateway.test.ts': ['cache: GETs served from cache within the TTL, scoped to the principal'],
    },
  },
  {
    id: 'T23',
    threat: 'protocol abuse',
    tests: {
      'bad-input.test.ts': ['malformed JSON-RPC over stdio does not kill the server', 'stdout stays clean: logs go to stderr even at debug level'],
      'http-transport.test.ts': ['malformed JSON-RPC and protocol errors'],
      'fault-stdio.test.ts': ['a line that is not UTF-8 is a parse error; the server keeps serving'],
      'bad-input-deep.test.ts': ['over stdio: deep and lone-surrogate arguments are answered invalid_input and the server keeps serving'],
      'protocol-2026.test.ts': [
        'ladder: Mcp-Method and Mcp-Name must be present and agree with the body (400, -32020)',
        'ladder: MCP-Protocol-Version must be present and equal the envelope; never a downgrade',
        'ladder: a modern header without the envelope, or a broken envelope, is 400, -32602',
        'ladder: unknown and removed methods are 404, -32601; batches cannot carry 2026 requests',
        'api keys: the bearer is checked before the ladder, its principal goes with every 2026 call and refusal',
      ],
      'protocol-2026-stdio.test.ts': ['raw stdio: per-message era, the ladder without headers, protocol-only stdout'],
    },
  },
  {
    id: 'T24',
    threat: 'tampered or unsigned policy bundle',
    tests: {
      'policy-bundle.test.ts': [
        'refused: unsigned, wrong key, HMAC signed with the public key',
        'refused: tampered, extra and missing files',
        'refused: not a bundle, too large',
      ],
      'policy-reload.test.ts': ['SIGHUP reloads a running server; bad bundles are refused with one log line and a metric, the old policy stays'],
    },
  },
  {
    id: 'T25',
    threat: 'approval bypass',
    tests: {
      'approval.test.ts': [
        '2026-07-28: input_required with a sealed state, then the approved retry runs once',
        '2026-07-28: declined, cancelled, not approved, or no answer',
        '2026-07-28: tampered state, changed arguments, another principal, another tool',
        '2026-07-28: an expired approval is refused and recorded expired; a replica without the key refuses',
        '2026-07-28 without elicitation, or no channel at all: approval_required, never a silent run',
        '2025-11-25: the approval record is durable before the human is asked; approve runs, decline does not',
        'an approved POST that the upstream redirects (307) is not carried to a target nobody approved',
      ],
      'request-state.test.ts': [
        'tampering with any part of the token is refused, and never throws',
        'another key, another purpose, or a payload of another shape never opens',
        'bound to the principal (id and how it authenticated) and the tool',
        'expiry, and single use',
        'the single-use memory is bounded: expired nonces are swept, unexpired ones are never forgotten',
      ],
      'approval-e2e.test.ts': [
        '2026-07-28: a retry with a tampered state or changed arguments is refused and audited',
        '2026-07-28: an approval that arrives after its window is refused as expired',
        '2025-11-25: the SDK v1 client is asked inline; approve runs, decline does not, no capability is refused',
      ],
    },
    gaps: ['the replay of a requestState at another replica sharing the key is not defended (the single-use memory is per process); no test, by design'],
  },
  {
    id: 'T26',
    threat: 'approval wait abuse',
    tests: {
      'approval.test.ts': ["2025-11-25: the human's wait does not eat the call's deadline; an unanswered ask expires"],
    },
  },
  {
    id: 'T27',
    threat: '2025-11-25 session and ask hijack over HTTP',
    tests: {
      'elicitation-http.test.ts': [
        'a tampered, foreign or garbage session id is an unknown session (404)',
        "another principal's response POST cannot resolve someone else's ask",
        'an ask the client does not answer times out; its late answer is refused',
        'a client that goes away while asked: the ask is aborted and forgotten',
        'a client that declared nothing stays stateless: no session id, no asks',
      ],
      'elicitation-units.test.ts': [
        'session tokens: bound to the principal, expire, open only under their purpose and key',
        'pending asks: only the owner answers; bounds; timeouts; aborts; answers that do not fit',
      ],
      'elicitation-stdio.test.ts': [
        'a client that declared nothing cannot be asked',
        'sampling and roots reach a client that declared them; undeclared ones are refused before sending',
      ],
    },
    gaps: ['no test runs an ask through a balancer (HAProxy sticky on Mcp-Session-Id): test/replicas.test.ts does not'],
  },
  {
    id: 'T28',
    threat: 'test-only conformance fixtures reachable in production',
    tests: {
      'conformance.test.ts': [
        '--profile conformance is refused wherever a deployment could be',
        'the compiled policy allows the family only under the profile, whatever a data file says',
        'the default profile: every scenario that applies to its tools passes, and no fixture is served',
      ],
    },
  },
];
