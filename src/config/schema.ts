import { z } from 'zod';
import { ATTRIBUTE_NAME, attributesProblems, MAX_ATTRIBUTE_LIST, MAX_ATTRIBUTE_VALUE, MAX_ATTRIBUTES } from '../core/principal-attributes.js';

const principal = z
  .object({
    id: z.string().min(1).max(128).describe("The principal's identifier, as the policy sees it (input.principal.id) and the audit log records it."),
    roles: z.array(z.string().min(1).max(64)).max(32).describe("Roles granted to the principal; the policy's grants are per role."),
    tier: z.string().min(1).max(64).default('standard').describe('Rate-limit tier (a key of limits.tiers).'),
    attributes: z
      .record(
        z.string().regex(ATTRIBUTE_NAME, 'an attribute name is lower-case [a-z][a-z0-9_]{0,62}'),
        z.union([z.string().min(1).max(MAX_ATTRIBUTE_VALUE), z.array(z.string().min(1).max(MAX_ATTRIBUTE_VALUE)).min(1).max(MAX_ATTRIBUTE_LIST)]),
      )
      .superRefine((a, ctx) => {
        for (const message of attributesProblems(a)) ctx.addIssue({ code: z.ZodIssueCode.custom, message });
      })
      .optional()
      .describe(
        `Verified attributes of this principal (e.g. {region: eu, tenant_id: "42"}): the policy reads input.principal.attributes, row filters take values from {"principal": "attributes.<name>"}. A value is a string or a list of strings; at most ${MAX_ATTRIBUTES} attributes.`,
      ),
  })
  .strict();

const hostPort = z.string().regex(/^[A-Za-z0-9.\-:[\]]+$/, 'a host name or address');

const tier = z
  .object({
    capacity: z.number().int().positive().max(1_000_000).describe('Bucket size: calls allowed in a burst.'),
    refill_per_s: z.number().positive().max(1_000_000).describe('Tokens added back per second (100 per hour = 0.0278).'),
  })
  .strict();

/** A pool of disposable worker processes: warm size, bounded queue, V8 heap cap per worker. */
const pool = z
  .object({
    size: z.number().int().min(1).max(64).describe('Warm worker processes kept ready.'),
    max_queue: z.number().int().min(0).max(10_000).describe('Calls that may wait for a free worker; past it a call is answered unavailable at once.'),
    heap_mb: z.number().int().min(32).max(16_384).describe('V8 heap cap of each worker process (MiB); a worker that passes it is killed and replaced.'),
  })
  .strict();

export const configSchema = z
  .object({
    server: z
      .object({
        transport: z
          .enum(['stdio', 'http'])
          .default('stdio')
          .describe('stdio: MCP over stdin/stdout for one local client; http: serve server.http (also `serve --http [HOST:]PORT`).'),
        http: z
          .object({
            host: hostPort
              .default('127.0.0.1')
              .describe('Address to listen on. Keep the loopback default unless auth.http is api_key: loopback-only mode refuses non-loopback peers anyway.'),
            port: z.number().int().min(0).max(65535).default(8765).describe('TCP port (0: any free port, printed at start-up).'),
            path: z
              .string()
              .regex(/^\/[A-Za-z0-9/_-]*$/)
              .default('/mcp')
              .describe('Path of the MCP endpoint; /health, /ready and /metrics are served beside it.'),
            allowed_origins: z
              .array(z.string().url())
              .default([])
              .describe('Browser Origin values allowed to call (exact URLs); a request with another Origin is refused 403 (DNS-rebinding and CSRF defence).'),
            allowed_hosts: z
              .array(hostPort)
              .default([])
              .describe(
                'Host header values accepted (host or host:port); empty: 127.0.0.1, localhost and [::1] on the listening port. Behind a balancer list the names clients use.',
              ),
            max_body_bytes: z
              .number()
              .int()
              .min(1024)
              .max(64 * 1024 * 1024)
              .default(1024 * 1024)
              .describe('Largest request body read; a larger one is refused 413 before it is parsed.'),
            headers_timeout_ms: z
              .number()
              .int()
              .min(100)
              .max(600_000)
              .default(10_000)
              .describe("A request's headers must arrive within this long (slowloris); a silent connection is closed too."),
            request_timeout_ms: z
              .number()
              .int()
              .min(100)
              .max(3_600_000)
              .default(120_000)
              .describe("A request (headers and body) must arrive within this long; the tool's run is not counted."),
            max_connections: z
              .number()
              .int()
              .min(1)
              .max(65_536)
              .default(256)
              .describe('Open connections served at once; past it a request is answered 503 and its connection closed.'),
            session_ttl_ms: z
              .number()
              .int()
              .min(60_000)
              .max(7 * 86_400_000)
              .default(86_400_000)
              .describe(
                'How long a 2025-11-25 Mcp-Session-Id stays valid after initialize (issued only to clients that declare elicitation, sampling or roots, so their calls can ask them). Session ids are sealed with the protocol.request_state_key_file key under their own sub-key: replicas must share it, and route a session to one replica (sticky on Mcp-Session-Id) for its asks to be answered. Past it the id is answered 404 and the client initializes again.',
              ),
          })
          .strict()
          .refine((h) => h.headers_timeout_ms <= h.request_timeout_ms, {
            message: 'headers_timeout_ms must not exceed request_timeout_ms',
            path: ['headers_timeout_ms'],
          })
          .default({})
          .describe('The HTTP listener (server.transport http).'),
      })
      .strict()
      .default({})
      .describe('How clients reach Bulwark: stdio (a client launches it) or HTTP (Streamable HTTP on /mcp).'),
    principals: z
      .object({
        stdio: principal
          .default({ id: 'local-user', roles: ['developer'], tier: 'local' })
          .describe('The principal of every call over stdio (the local user who launched the server).'),
        loopback: principal
          .default({ id: 'loopback', roles: ['developer'], tier: 'local' })
          .describe('The principal of HTTP callers from loopback addresses while auth.http is loopback-only.'),
      })
      .strict()
      .default({})
      .describe('Who a caller is when no credential says so: the stdio user, and HTTP loopback callers in loopback-only mode.'),
    auth: z
      .object({
        http: z
          .enum(['loopback-only', 'api_key'])
          .default('loopback-only')
          .describe(
            'loopback-only: HTTP serves loopback peers as principals.loopback (the embedded demo). api_key: every /mcp and /metrics request needs `Authorization: Bearer` with an API key (or a JWT from auth.oauth when configured), and non-loopback peers may connect.',
          ),
        store: z.enum(['file', 'postgres']).default('file').describe('Where API keys live: one file (a single machine), or PostgreSQL shared by replicas.'),
        keys_file: z
          .string()
          .min(1)
          .default('.bulwark/keys.json')
          .describe('The file store (relative to the config file); `bulwark keys create|list|revoke` manage it.'),
        postgres_url: z
          .string()
          .min(1)
          .optional()
          .describe(
            'The PostgreSQL store: a login granted bulwark_keys_reader (sql/api-keys-postgres.sql); usually ${KEYS_DATABASE_URL}. Required when auth.store is postgres.',
          ),
        max_stale_s: z
          .number()
          .int()
          .min(1)
          .max(3600)
          .default(30)
          .describe('Keys are refused (503) once the store could not be read for this long: a revocation must not go unseen.'),
        proof_ttl_s: z.number().int().min(0).max(3600).default(60).describe('How long a verified key is trusted without argon2 (an HMAC proof in memory).'),
        reload_check_ms: z
          .number()
          .int()
          .min(50)
          .max(60_000)
          .default(1000)
          .describe('How often at most the key store is checked for changes (revocation bound = this + one request).'),
        lockout: z
          .object({
            threshold: z.number().int().min(1).max(1000).default(5).describe('Failures per (key id, client address) before that pair is locked.'),
            address_threshold: z
              .number()
              .int()
              .min(1)
              .max(10_000)
              .optional()
              .describe('Failures per client address (any key, malformed tokens, JWTs) before the address is locked; default 4 × threshold.'),
            base_s: z.number().min(0.01).max(3600).default(1).describe('First lock duration; doubled per further failure.'),
            max_s: z.number().min(0.01).max(86_400).default(900).describe('Longest lock duration.'),
            forget_s: z.number().min(1).max(86_400).default(900).describe('Failures are forgotten after this long without another.'),
          })
          .strict()
          .default({})
          .describe('Lockout after repeated authentication failures, with exponential backoff.'),
        argon2: z
          .object({
            concurrency: z.number().int().min(1).max(8).default(1).describe('Verifications running at once.'),
            queue: z.number().int().min(0).max(1000).default(16).describe('Verifications waiting; past it a request is refused at once (503 auth.busy).'),
            isolate: z.boolean().default(true).describe('Run them in a child process at a lower CPU priority, with its own thread pool.'),
          })
          .strict()
          .default({})
          .describe(
            "argon2 runs on the libuv thread pool that the audit log's fdatasync needs too: at most concurrency verifications at once, queue waiting, the rest refused at once (503 auth.busy).",
          ),
        refusals: z
          .object({
            per_address: z.number().int().min(0).max(100_000).default(5).describe('Refusals recorded one by one per address and interval.'),
            interval_s: z.number().min(0.1).max(3600).default(60).describe('The interval.'),
          })
          .strict()
          .default({})
          .describe('Refused authentications past per_address per address and interval are aggregated into one audit record.'),
        resource: z.string().url().optional().describe("The protected resource identifier for RFC 9728 metadata (default: this server's /mcp URL)."),
        oauth: z
          .object({
            issuer: z.string().url().describe('Required `iss` of accepted tokens.'),
            audience: z.string().min(1).describe('Required `aud` of accepted tokens (this server).'),
            jwks_file: z.string().min(1).optional().describe("The issuer's public keys (JWKS) from a file."),
            jwks_url: z.string().url().optional().describe("The issuer's public keys (JWKS) fetched from this URL."),
            roles_claim: z.string().min(1).default('roles').describe('Claim holding roles: an array of strings, or a space-separated string (scope).'),
            principal_claim: z.string().min(1).default('sub').describe('Claim naming the principal.'),
            attributes: z
              .record(z.string().regex(ATTRIBUTE_NAME, 'an attribute name is lower-case [a-z][a-z0-9_]{0,62}'), z.string().min(1).max(256))
              .refine((m) => Object.keys(m).length <= MAX_ATTRIBUTES, `at most ${MAX_ATTRIBUTES} attributes`)
              .optional()
              .describe(
                'Principal attributes from verified token claims: attribute name → top-level claim name (e.g. {region: region, tenant_id: "https://example.com/tenant"}). A claim holding a string, a safe integer (written in decimal) or a list of strings sets the attribute; a missing claim, or one of another type or out of bounds, leaves it absent (a row filter that needs it then refuses the call).',
              ),
            tier: z.string().min(1).max(64).default('standard').describe('Rate-limit tier of token holders.'),
            clock_skew_s: z.number().int().min(0).max(300).default(30).describe('Leeway for exp and nbf.'),
            // Asymmetric only: `none` needs no key at all, and HS* would make the issuer's public key set a
            // shared secret (algorithm confusion). Refused here so a typo cannot open either door.
            algorithms: z
              .array(
                z
                  .string()
                  .min(2)
                  .refine((a) => a.toLowerCase() !== 'none' && !/^HS/i.test(a), {
                    message: "none and HMAC (HS*) algorithms are not accepted: access tokens must be signed with the issuer's asymmetric key",
                  }),
              )
              .min(1)
              .default(['RS256', 'ES256', 'EdDSA', 'PS256'])
              .describe('Accepted signature algorithms: asymmetric only (none and HS* are refused).'),
            scopes_supported: z.array(z.string().min(1)).optional().describe('Scopes advertised in the protected resource metadata.'),
          })
          .strict()
          .refine((o) => (o.jwks_file === undefined) !== (o.jwks_url === undefined), 'exactly one of jwks_file or jwks_url')
          .optional()
          .describe('Accept JWT access tokens from one OAuth issuer besides API keys (exactly one of jwks_file or jwks_url).'),
      })
      .strict()
      .refine((a) => a.store !== 'postgres' || a.postgres_url !== undefined, {
        message: 'auth.store is postgres: set auth.postgres_url',
        path: ['postgres_url'],
      })
      .default({})
      .describe('Authentication of HTTP callers: API keys (file or PostgreSQL store), optional OAuth JWTs, lockout and argon2 limits.'),
    limits: z
      .object({
        default_tier: z
          .string()
          .default('standard')
          .describe('Tier of principals whose own tier is not in limits.tiers, and of keys created without --tier. Must name a tier in limits.tiers.'),
        tiers: z
          .record(z.string(), tier)
          .default({
            standard: { capacity: 100, refill_per_s: 100 / 3600 },
            premium: { capacity: 1000, refill_per_s: 1000 / 3600 },
            burst: { capacity: 10, refill_per_s: 10 / 60 },
            local: { capacity: 1000, refill_per_s: 200 },
          })
          .describe(
            'Rate-limit tiers by name. Setting this key REPLACES the whole default map: standard, premium, burst and local are gone unless you list them. A principal whose tier is not listed gets the bucket of limits.default_tier, which must be listed.',
          ),
        per_tool: z
          .record(z.string(), z.union([z.string().min(1), tier]))
          .default({})
          .describe(
            "Extra buckets per principal and tool, by tool name: a tier name or { capacity, refill_per_s }. A call takes a token from its principal's bucket and from this one.",
          ),
        max_args_bytes: z
          .number()
          .int()
          .min(256)
          .max(16 * 1024 * 1024)
          .default(256 * 1024)
          .describe('Largest tool arguments accepted (bytes of JSON); larger calls are refused invalid_input before analysis.'),
        max_policy_input_bytes: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024)
          .default(32 * 1024)
          .describe('Largest policy input document (bytes); a call whose input is larger is refused rather than evaluated slowly.'),
        store: z
          .enum(['memory', 'redis'])
          .default('memory')
          .describe('Where rate-limit buckets live: this process, or Redis shared by every replica (limits.redis_url).'),
        redis_url: z
          .string()
          .min(1)
          .optional()
          .describe('redis://[:password@]host:port[/db], usually ${REDIS_URL}; never logged. Required when a store is redis.'),
        redis_prefix: z
          .string()
          .regex(/^[A-Za-z0-9:._-]{1,64}$/)
          .default('bulwark:')
          .describe('Prefix of every Redis key Bulwark writes (share one Redis between deployments with different prefixes).'),
        api_cache: z
          .object({
            max_bytes: z
              .number()
              .int()
              .min(0)
              .max(4 * 1024 * 1024 * 1024)
              .default(64 * 1024 * 1024)
              .describe('Memory the in-process LRU may hold (bytes); 0 disables it.'),
            store: z
              .enum(['memory', 'redis'])
              .default('memory')
              .describe('memory: each replica caches for itself; redis: shared through limits.redis_url (the local LRU stays in front).'),
          })
          .strict()
          .default({})
          .describe("call_api's response cache (per principal, per upstream cache_ttl_s)."),
      })
      .strict()
      .default({})
      .describe('Rate limits (token buckets per principal, per principal and tool, per upstream), argument caps, and where buckets and the API cache live.'),
    filesystem: z
      .object({
        roots: z
          .array(z.string().min(1))
          .default([])
          .describe(
            'Folders the filesystem tools may read (real paths; relative to the config file; `serve --root DIR` adds one). Empty: every path is refused (path.no_roots).',
          ),
        max_file_bytes: z
          .number()
          .int()
          .positive()
          .default(10 * 1024 * 1024)
          .describe('Largest file read_file opens (bytes).'),
        max_result_bytes: z
          .number()
          .int()
          .positive()
          .default(1024 * 1024)
          .describe('Largest result a filesystem tool returns (bytes).'),
        blocked_extensions: z
          .array(z.string().regex(/^\.[^/\\]+$/, 'an extension with a leading dot'))
          .optional()
          .describe("File extensions never served (with the dot, case-insensitive). Unset: the policy data's list (policies/data.json); set: replaces it."),
        max_entries: z.number().int().positive().max(1_000_000).default(1000).describe('Most entries list_directory returns (a call may ask for fewer).'),
        max_depth: z.number().int().min(0).max(64).default(8).describe('Deepest recursion of list_directory and search_files.'),
        search: z
          .object({
            max_results: z.number().int().positive().max(100_000).default(200).describe('Most matches returned.'),
            time_budget_ms: z
              .number()
              .int()
              .positive()
              .max(600_000)
              .default(5000)
              .describe('Wall time a search may take before it returns what it found, marked truncated.'),
            max_file_bytes: z
              .number()
              .int()
              .positive()
              .default(1024 * 1024)
              .describe('Files larger than this are not searched (bytes).'),
            max_files: z.number().int().positive().default(10_000).describe('Most files examined by one search.'),
          })
          .strict()
          .default({})
          .describe('search_files caps.'),
      })
      .strict()
      .default({})
      .describe('The filesystem tools (read_file, list_directory, search_files, file_info): roots and caps.'),
    database: z
      .object({
        url: z.string().min(1).optional().describe('postgres://… of a SELECT-only role (see sql/database-readonly-role.sql); usually ${DATABASE_URL}.'),
        pool: z
          .object({
            max: z.number().int().min(1).max(100).default(4).describe('Connections open at most.'),
            idle_timeout_s: z.number().int().min(1).default(30).describe('An idle connection is closed after this long.'),
            max_lifetime_s: z
              .number()
              .int()
              .min(10)
              .default(1800)
              .describe('A connection is replaced after this long (whatever it did, session state cannot outlive it).'),
            connect_timeout_s: z.number().int().min(1).default(5).describe('Connecting gives up after this long (the call answers unavailable).'),
          })
          .strict()
          .default({})
          .describe('The PostgreSQL connection pool (postgres.js).'),
        max_rows: z
          .number()
          .int()
          .positive()
          .max(1_000_000)
          .default(1000)
          .describe('Most rows returned by a query (a cursor stops there; the policy may lower it).'),
        max_result_bytes: z
          .number()
          .int()
          .positive()
          .default(4 * 1024 * 1024)
          .describe('Largest result returned (bytes of the rows as JSON).'),
        max_sql_bytes: z
          .number()
          .int()
          .min(64)
          .max(1024 * 1024)
          .default(16 * 1024)
          .describe('Longest SQL text accepted (bytes); longer is refused before parsing.'),
        statement_timeout_ms: z.number().int().min(10).max(600_000).default(5000).describe('PostgreSQL statement_timeout for each query.'),
        lock_timeout_ms: z.number().int().min(1).max(60_000).default(1000).describe('PostgreSQL lock_timeout for each query.'),
        catalog_refresh_ms: z
          .number()
          .int()
          .min(1000)
          .max(86_400_000)
          .default(60_000)
          .describe(
            'How old the cached column lists (pg_catalog) that column lineage resolves against may get before the next query reads them again; describe_table and an unknown relation refresh them too.',
          ),
        default_schema: z
          .string()
          .regex(/^[a-z_][a-z0-9_]{0,62}$/)
          .default('public')
          .describe("Schema of unqualified table names (the session's search_path), as the policy sees them."),
        functions: z
          .array(z.string().regex(/^[a-z_][a-z0-9_]*$/))
          .optional()
          .describe('Function allow-list for the SQL analyser; defaults to the built-in list of safe functions.'),
        allow_catalogs: z.boolean().default(false).describe('Let queries read pg_catalog and information_schema (off: refused by the analyser).'),
        embedded: z
          .boolean()
          .default(true)
          .describe('Without a url: run the database tools on an embedded PGlite with demo data (a superuser; see SECURITY.md).'),
      })
      .strict()
      .default({})
      .describe("The database tools (query_database, list_tables, describe_table): connection, caps and the SQL analyser's allow-lists."),
    apis: z
      .record(
        z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'an upstream name (letters, digits, "_", ".", "-")'),
        z
          .object({
            base_url: z.string().url().describe("The upstream's base URL; every request goes to a path below it."),
            headers: z
              .record(
                z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/, 'an HTTP header name'),
                z
                  .string()
                  .max(8192)
                  .regex(/^[^\r\n\0]*$/, 'a header value without CR, LF or NUL'),
              )
              .default({})
              .describe('Sent on every request; values are secrets (${ENV}): never logged, returned or audited.'),
            methods: z
              .array(z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']))
              .min(1)
              .default(['GET', 'HEAD'])
              .describe('HTTP methods allowed on this upstream (the policy may allow fewer).'),
            path_prefixes: z
              .array(z.string().regex(/^\//, 'a path starting with "/"'))
              .min(1)
              .default(['/'])
              .describe('Paths (below base_url) a request may go to.'),
            timeout_ms: z
              .number()
              .int()
              .min(10)
              .max(600_000)
              .default(10_000)
              .describe("Per attempt: connect, headers and body must arrive within this (the call's own deadline still applies)."),
            retries: z
              .number()
              .int()
              .min(0)
              .max(10)
              .default(2)
              .describe('Retries after a timeout, a connection error or a 502/503/504, for idempotent methods only.'),
            retry_backoff_ms: z
              .number()
              .int()
              .min(1)
              .max(60_000)
              .default(100)
              .describe("Backoff ceiling of the first retry, doubled per retry (full jitter; never past the call's deadline)."),
            rate: z
              .union([z.string().min(1), tier])
              .optional()
              .describe("Per principal on this upstream: a tier name or a bucket; default: the principal's tier."),
            rate_total: tier.optional().describe("One bucket shared by every principal on this upstream (the upstream's own quota)."),
            cache_ttl_s: z
              .number()
              .int()
              .min(0)
              .max(86_400)
              .default(0)
              .describe('Cache GET responses this long, per principal (0: no caching). Responses marked no-store are not cached.'),
            max_response_bytes: z
              .number()
              .int()
              .min(1)
              .max(256 * 1024 * 1024)
              .default(1024 * 1024)
              .describe('Largest response body read (bytes); past it the request is abandoned and the call fails.'),
            internal: z.boolean().default(false).describe('May reach loopback, private, link-local and unique-local addresses.'),
            allowed_cidrs: z.array(z.string().min(1)).optional().describe('When set, every resolved address must also be inside one of these ranges.'),
            follow_redirects: z
              .number()
              .int()
              .min(0)
              .max(10)
              .default(0)
              .describe('Redirect hops followed; each hop is checked like the first request (upstream, path, addresses, policy).'),
            breaker: z
              .object({
                failures: z.number().int().min(1).max(1000).default(5).describe('Consecutive failures that open the breaker.'),
                cooldown_ms: z.number().int().min(10).max(3_600_000).default(30_000).describe('How long an open breaker refuses calls before one trial call.'),
              })
              .strict()
              .default({})
              .describe('Circuit breaker: after `failures` consecutive failures calls fail fast for `cooldown_ms`.'),
            max_connections: z.number().int().min(1).max(1024).default(16).describe('Connections kept to this upstream at most.'),
          })
          .strict(),
      )
      .optional()
      .describe('Named upstreams for call_api: the model names one and gives a path under it; nothing else is reachable.'),
    javascript: z
      .object({
        memory_mb: z.number().int().min(8).max(4096).default(64).describe('Isolate heap cap (MiB); a call that passes it ends resource_exceeded.'),
        timeout_ms: z.number().int().min(10).max(600_000).default(2000).describe('CPU and wall time a script may run; past it the call ends timeout.'),
        max_code_bytes: z
          .number()
          .int()
          .min(16)
          .max(1024 * 1024)
          .default(64 * 1024)
          .describe('Longest script accepted (bytes).'),
        max_output_bytes: z
          .number()
          .int()
          .min(64)
          .max(16 * 1024 * 1024)
          .default(64 * 1024)
          .describe('Largest result and console output returned (bytes).'),
      })
      .strict()
      .default({})
      .describe('run_javascript: each call runs in a fresh isolated-vm isolate inside a disposable worker process.'),
    execution: z
      .object({
        timeout_ms: z
          .number()
          .int()
          .min(10)
          .max(600_000)
          .default(10_000)
          .describe('Deadline of every call through the gate: queue waits, connects, the executor and retries count; the policy may shorten it.'),
        filesystem_pool: pool
          .default({ size: 2, max_queue: 64, heap_mb: 256 })
          .describe("Workers for the filesystem tools (started with Node's permission model, reading only the roots)."),
        javascript_pool: pool.default({ size: 2, max_queue: 16, heap_mb: 512 }).describe('Workers for run_javascript (one isolate per call inside them).'),
      })
      .strict()
      .default({})
      .describe('The call deadline and the worker process pools.'),
    protocol: z
      .object({
        request_state_key_file: z
          .string()
          .min(1)
          .optional()
          .describe(
            'A file (relative to the config file) holding at least 32 bytes of secret key material that seals 2026-07-28 requestState and 2025-11-25 session ids (AES-256-GCM, a sub-key per use); the environment variable BULWARK_REQUEST_STATE_KEY is used when this is unset. Neither: a random key per process, so replicas behind one balancer need a shared key (without one a retry that reaches another replica is refused, never trusted).',
          ),
        request_state_ttl_ms: z
          .number()
          .int()
          .min(1000)
          .max(86_400_000)
          .default(600_000)
          .describe("How long a tool's input_required requestState stays valid; an approval's requestState lives as long as the policy's approval ttl_ms."),
      })
      .strict()
      .default({})
      .describe('State the client carries between requests (2026-07-28 input_required results): its sealing key and lifetime.'),
    policy: z
      .object({
        wasm: z
          .string()
          .optional()
          .describe(
            'The policy compiled to wasm (`bulwark policy build`); default: the committed policies/policy.wasm. Unloadable: every call is denied policy_error.',
          ),
        data: z.string().optional().describe('Policy data (roles, grants, allow-lists) as JSON; default: policies/data.json.'),
        bundle: z
          .string()
          .min(1)
          .optional()
          .describe(
            'A signed OPA bundle (tar.gz from `bulwark policy build --bundle`) to load instead of policy.wasm/policy.data, relative to the config file; reloaded on change and on SIGHUP.',
          ),
        bundle_url: z
          .string()
          .regex(/^https?:\/\//, 'an http(s) URL')
          .optional()
          .describe('A signed OPA bundle served over HTTP(S), polled every poll_interval_ms with If-None-Match (ETag); exclusive with policy.bundle.'),
        verification_key: z
          .string()
          .min(1)
          .optional()
          .describe('The public key (PEM: PUBLIC KEY or CERTIFICATE) bundles must be signed with, or a file holding it; required with a bundle.'),
        verification_key_id: z
          .string()
          .min(1)
          .max(128)
          .default('default')
          .describe("The key id (JWT `kid`) the bundle signature must name (opa's default is `default`)."),
        signing_alg: z
          .enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'])
          .default('RS256')
          .describe('The one signature algorithm accepted for bundles (asymmetric only: HS* would put the signing secret on every replica).'),
        scope: z.string().min(1).max(256).optional().describe('The `scope` claim the bundle signature must carry (opa build --claims-file); none by default.'),
        poll_interval_ms: z
          .number()
          .int()
          .min(100)
          .max(86_400_000)
          .default(30_000)
          .describe('How often a bundle source is checked for a new bundle (bundle_url: a conditional GET; bundle: a re-read besides watching the file).'),
        watch: z
          .boolean()
          .default(true)
          .describe(
            'Reload a policy.bundle file when it changes (file events, and a re-read every poll_interval_ms); false: only on SIGHUP. A bundle_url is always polled.',
          ),
        max_bundle_bytes: z
          .number()
          .int()
          .min(1024)
          .max(256 * 1024 * 1024)
          .default(32 * 1024 * 1024)
          .describe('Largest bundle accepted, compressed and uncompressed.'),
      })
      .strict()
      .refine((p) => p.bundle === undefined || p.bundle_url === undefined, {
        message: 'set one of policy.bundle or policy.bundle_url, not both',
        path: ['bundle_url'],
      })
      .refine((p) => (p.bundle === undefined && p.bundle_url === undefined) || p.verification_key !== undefined, {
        message: 'a policy bundle is configured: set policy.verification_key (bundles are verified before they load)',
        path: ['verification_key'],
      })
      .default({})
      .describe('The compiled OPA policy and its data.'),
    audit: z
      .object({
        backend: z
          .enum(['file', 'postgres'])
          .default('file')
          .describe('file: JSONL segments under audit.path; postgres: rows in audit.postgres_url (for replicas sharing one store).'),
        path: z.string().default('.bulwark/audit.jsonl').describe("The file backend's log (rotated segments sit beside it)."),
        durability: z
          .enum(['fsync', 'batch', 'async'])
          .default('fsync')
          .describe(
            'fsync: a call is answered only after its record is on disk (group commit); batch: fsync at most every batch_ms; async: leave it to the OS.',
          ),
        batch_ms: z.number().int().min(1).max(60_000).default(50).describe('With durability batch, the longest a record waits for its fsync.'),
        stream: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,128}$/, 'letters, digits, ".", "_", "-"')
          .default('default')
          .describe('One hash chain per stream (the PostgreSQL backend; also the checkpoint origin). Give each replica its own.'),
        postgres_url: z.string().min(1).optional().describe("The PostgreSQL backend's connection URL (usually ${AUDIT_DATABASE_URL}); never logged."),
        max_line_bytes: z
          .number()
          .int()
          .min(4096)
          .max(1024 * 1024)
          .default(64 * 1024)
          .describe('Longest record line (bytes); a record that would be longer is written without its arguments (their hash is kept).'),
        rotation: z
          .object({
            max_bytes: z.number().int().min(4096).optional().describe('Rotate when the active segment reaches this size (bytes).'),
            max_age_s: z.number().int().min(1).optional().describe('Rotate when the active segment is this old.'),
          })
          .strict()
          .optional()
          .describe('Start a new segment of the file log by size or age (each segment chains to the previous one). Unset: one file.'),
        checkpoint: z
          .object({
            private_key: z.string().min(1).optional().describe('Signer key (note format), or a file holding it; without it no checkpoints are written.'),
            public_keys: z.array(z.string().min(1)).default([]).describe('Verifier keys (note format) or files; keep old keys listed after a key rotation.'),
            every_records: z.number().int().min(1).max(1_000_000).default(1000).describe('Write a checkpoint at least every this many records.'),
            every_ms: z.number().int().min(10).max(3_600_000).default(1000).describe('And at least this often while records arrive.'),
            mirror_path: z
              .string()
              .min(1)
              .optional()
              .describe("A second file every checkpoint is also written to (put it outside the writer's reach where you can)."),
            origin: z
              .string()
              .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces')
              .optional()
              .describe("The checkpoint's origin line; default derived from audit.stream."),
          })
          .strict()
          .optional()
          .describe("Signed checkpoints (Ed25519, note format) over the log's head, so truncation and rewriting are detected by `audit verify`."),
        genesis: z
          .boolean()
          .optional()
          .describe(
            'Start a new log with a genesis record (stream, creation time, signing keys, policy revision). Default: on, for both backends. `audit verify --require-genesis` requires it of a signed log.',
          ),
        witnesses: z
          .array(
            z
              .object({
                name: z.string().min(1).describe("The witness's name (as in its verifier key)."),
                url: z.string().url().describe("The witness's submission prefix URL."),
                key: z.string().min(1).describe("The witness's cosignature/v1 verifier key (NAME+KEYID+BASE64)."),
              })
              .strict(),
          )
          .default([])
          .describe(
            'C2SP tlog-witnesses that cosign each checkpoint (needs checkpoint signing). Cosignatures go to `<stem>.cosignatures.jsonl` beside a file log, to the bulwark_audit_cosignature table for PostgreSQL.',
          ),
        witness_quorum: z
          .number()
          .int()
          .min(1)
          .optional()
          .describe('How many of the witnesses must cosign a checkpoint for verify to accept it (default: all).'),
        policy_archive: z
          .string()
          .min(1)
          .optional()
          .describe(
            "Folder of every policy that decided a call, by revision (`audit replay` reads it); relative to the config's folder. Default: `policies/` beside the audit log.",
          ),
        replay_inputs: z
          .boolean()
          .default(true)
          .describe(
            'Keep a copy of each decision\'s exact policy input beside the log (`<stem>.inputs.jsonl`; PostgreSQL: the bulwark_audit_policy_input table, in the record\'s transaction) so `audit replay` can re-evaluate it. The copy holds the arguments in full (as sensitive as they are); false keeps only its hash in the record, and replay reports "cannot replay".',
          ),
      })
      .strict()
      .default({})
      .describe('The hash-chained audit log: backend, durability, rotation, signed checkpoints, witnesses.'),
    observability: z
      .object({
        log_level: z.enum(['error', 'warn', 'info', 'debug']).default('info').describe('Lowest level written to the log (JSON lines on stderr).'),
        slow_call_ms: z
          .number()
          .int()
          .min(0)
          .max(3_600_000)
          .default(1000)
          .describe(
            'A call that takes longer than this through the gate (all stages, the audit record included) logs one warn line with its stage timings and counts in mcp_slow_calls_total; 0 turns it off.',
          ),
        slow_call_ms_by_tool: z
          .record(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a tool name'), z.number().int().min(0).max(3_600_000))
          .default({})
          .describe('Per tool name, a threshold that replaces slow_call_ms for that tool (0: never log that tool as slow).'),
      })
      .strict()
      .default({})
      .describe('Logging and slow-call monitoring (Prometheus metrics are served on /metrics over HTTP).'),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
