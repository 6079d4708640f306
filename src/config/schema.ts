import { z } from 'zod';

const principal = z
  .object({
    id: z.string().min(1).max(128),
    roles: z.array(z.string().min(1).max(64)).max(32),
    tier: z.string().min(1).max(64).default('standard'),
  })
  .strict();

const hostPort = z.string().regex(/^[A-Za-z0-9.\-:[\]]+$/, 'a host name or address');

const tier = z
  .object({
    capacity: z.number().int().positive().max(1_000_000),
    refill_per_s: z.number().positive().max(1_000_000),
  })
  .strict();

/** A pool of disposable worker processes: warm size, bounded queue, V8 heap cap per worker. */
const pool = z
  .object({
    size: z.number().int().min(1).max(64),
    max_queue: z.number().int().min(0).max(10_000),
    heap_mb: z.number().int().min(32).max(16_384),
  })
  .strict();

export const configSchema = z
  .object({
    server: z
      .object({
        transport: z.enum(['stdio', 'http']).default('stdio'),
        http: z
          .object({
            host: hostPort.default('127.0.0.1'),
            port: z.number().int().min(0).max(65535).default(8765),
            path: z
              .string()
              .regex(/^\/[A-Za-z0-9/_-]*$/)
              .default('/mcp'),
            allowed_origins: z.array(z.string().url()).default([]),
            allowed_hosts: z.array(hostPort).default([]),
            max_body_bytes: z
              .number()
              .int()
              .min(1024)
              .max(64 * 1024 * 1024)
              .default(1024 * 1024),
            /** A request's headers must arrive within this long (slowloris; a silent connection is closed too). */
            headers_timeout_ms: z.number().int().min(100).max(600_000).default(10_000),
            /** A request (headers and body) must arrive within this long; the tool's run is not counted. */
            request_timeout_ms: z.number().int().min(100).max(3_600_000).default(120_000),
            /** Open connections served at once; past it a request is answered 503 and its connection closed. */
            max_connections: z.number().int().min(1).max(65_536).default(256),
          })
          .strict()
          .refine((h) => h.headers_timeout_ms <= h.request_timeout_ms, {
            message: 'headers_timeout_ms must not exceed request_timeout_ms',
            path: ['headers_timeout_ms'],
          })
          .default({}),
      })
      .strict()
      .default({}),
    principals: z
      .object({
        stdio: principal.default({ id: 'local-user', roles: ['developer'], tier: 'local' }),
        /** HTTP callers until API keys arrive: only loopback addresses are accepted. */
        loopback: principal.default({ id: 'loopback', roles: ['developer'], tier: 'local' }),
      })
      .strict()
      .default({}),
    auth: z
      .object({
        /**
         * `loopback-only`: HTTP serves loopback peers as principals.loopback (the embedded demo).
         * `api_key`: every /mcp and /metrics request needs `Authorization: Bearer` — an API key, or a
         * JWT from auth.oauth when configured — and non-loopback peers may connect.
         */
        http: z.enum(['loopback-only', 'api_key']).default('loopback-only'),
        /** Where API keys live: one file (a single machine), or PostgreSQL shared by replicas. */
        store: z.enum(['file', 'postgres']).default('file'),
        /** The file store (relative to the config file). */
        keys_file: z.string().min(1).default('.bulwark/keys.json'),
        /** The PostgreSQL store: a login granted bulwark_keys_reader (sql/api-keys-postgres.sql); usually `${KEYS_DATABASE_URL}`. */
        postgres_url: z.string().min(1).optional(),
        /** Keys are refused (503) once the store could not be read for this long: a revocation must not go unseen. */
        max_stale_s: z.number().int().min(1).max(3600).default(30),
        /** How long a verified key is trusted without argon2 (an HMAC proof in memory). */
        proof_ttl_s: z.number().int().min(0).max(3600).default(60),
        /** How often at most the key store's mtime is checked (revocation bound = this + one request). */
        reload_check_ms: z.number().int().min(50).max(60_000).default(1000),
        lockout: z
          .object({
            /** Failures per (key id, client address) before that pair is locked. */
            threshold: z.number().int().min(1).max(1000).default(5),
            /** Failures per client address (any key, malformed tokens, JWTs) before the address is locked; default 4 × threshold. */
            address_threshold: z.number().int().min(1).max(10_000).optional(),
            base_s: z.number().min(0.01).max(3600).default(1),
            max_s: z.number().min(0.01).max(86_400).default(900),
            forget_s: z.number().min(1).max(86_400).default(900),
          })
          .strict()
          .default({}),
        /**
         * argon2 runs on the libuv thread pool that the audit log's fdatasync needs too: at most
         * `concurrency` verifications at once, `queue` waiting, the rest refused at once (503 auth.busy).
         */
        argon2: z
          .object({
            concurrency: z.number().int().min(1).max(8).default(1),
            queue: z.number().int().min(0).max(1000).default(16),
            /** Run them in a child process at a lower CPU priority, with its own thread pool. */
            isolate: z.boolean().default(true),
          })
          .strict()
          .default({}),
        /** Refused authentications past `per_address` per address and interval are aggregated into one audit record. */
        refusals: z
          .object({
            per_address: z.number().int().min(0).max(100_000).default(5),
            interval_s: z.number().min(0.1).max(3600).default(60),
          })
          .strict()
          .default({}),
        /** The protected resource identifier for RFC 9728 metadata (default: this server's /mcp URL). */
        resource: z.string().url().optional(),
        oauth: z
          .object({
            issuer: z.string().url(),
            audience: z.string().min(1),
            jwks_file: z.string().min(1).optional(),
            jwks_url: z.string().url().optional(),
            /** Claim holding roles: an array of strings, or a space-separated string (`scope`). */
            roles_claim: z.string().min(1).default('roles'),
            /** Claim naming the principal. */
            principal_claim: z.string().min(1).default('sub'),
            tier: z.string().min(1).max(64).default('standard'),
            clock_skew_s: z.number().int().min(0).max(300).default(30),
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
              .default(['RS256', 'ES256', 'EdDSA', 'PS256']),
            scopes_supported: z.array(z.string().min(1)).optional(),
          })
          .strict()
          .refine((o) => (o.jwks_file === undefined) !== (o.jwks_url === undefined), 'exactly one of jwks_file or jwks_url')
          .optional(),
      })
      .strict()
      .refine((a) => a.store !== 'postgres' || a.postgres_url !== undefined, {
        message: 'auth.store is postgres: set auth.postgres_url',
        path: ['postgres_url'],
      })
      .default({}),
    limits: z
      .object({
        default_tier: z.string().default('standard'),
        tiers: z.record(z.string(), tier).default({
          standard: { capacity: 100, refill_per_s: 100 / 3600 },
          premium: { capacity: 1000, refill_per_s: 1000 / 3600 },
          burst: { capacity: 10, refill_per_s: 10 / 60 },
          local: { capacity: 1000, refill_per_s: 200 },
        }),
        /** Extra per principal-and-tool buckets: a tier name or { capacity, refill_per_s } per tool. */
        per_tool: z.record(z.string(), z.union([z.string().min(1), tier])).default({}),
        max_args_bytes: z
          .number()
          .int()
          .min(256)
          .max(16 * 1024 * 1024)
          .default(256 * 1024),
        max_policy_input_bytes: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024)
          .default(32 * 1024),
        /** Where the API tools keep rate buckets: this process, or Redis shared by every replica. */
        store: z.enum(['memory', 'redis']).default('memory'),
        /** redis://[:password@]host:port[/db], usually `${REDIS_URL}`; never logged. */
        redis_url: z.string().min(1).optional(),
        redis_prefix: z
          .string()
          .regex(/^[A-Za-z0-9:._-]{1,64}$/)
          .default('bulwark:'),
        /** The API response cache: a bounded in-memory LRU, optionally backed by Redis. */
        api_cache: z
          .object({
            max_bytes: z
              .number()
              .int()
              .min(0)
              .max(4 * 1024 * 1024 * 1024)
              .default(64 * 1024 * 1024),
            store: z.enum(['memory', 'redis']).default('memory'),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    filesystem: z
      .object({
        roots: z.array(z.string().min(1)).default([]),
        max_file_bytes: z
          .number()
          .int()
          .positive()
          .default(10 * 1024 * 1024),
        max_result_bytes: z
          .number()
          .int()
          .positive()
          .default(1024 * 1024),
        blocked_extensions: z.array(z.string().regex(/^\.[^/\\]+$/, 'an extension with a leading dot')).optional(),
        max_entries: z.number().int().positive().max(1_000_000).default(1000),
        max_depth: z.number().int().min(0).max(64).default(8),
        search: z
          .object({
            max_results: z.number().int().positive().max(100_000).default(200),
            time_budget_ms: z.number().int().positive().max(600_000).default(5000),
            max_file_bytes: z
              .number()
              .int()
              .positive()
              .default(1024 * 1024),
            max_files: z.number().int().positive().default(10_000),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    database: z
      .object({
        /** postgres://… of a SELECT-only role (see sql/database-readonly-role.sql); usually `${DATABASE_URL}`. */
        url: z.string().min(1).optional(),
        pool: z
          .object({
            max: z.number().int().min(1).max(100).default(4),
            idle_timeout_s: z.number().int().min(1).default(30),
            max_lifetime_s: z.number().int().min(10).default(1800),
            connect_timeout_s: z.number().int().min(1).default(5),
          })
          .strict()
          .default({}),
        max_rows: z.number().int().positive().max(1_000_000).default(1000),
        max_result_bytes: z
          .number()
          .int()
          .positive()
          .default(4 * 1024 * 1024),
        max_sql_bytes: z
          .number()
          .int()
          .min(64)
          .max(1024 * 1024)
          .default(16 * 1024),
        statement_timeout_ms: z.number().int().min(10).max(600_000).default(5000),
        lock_timeout_ms: z.number().int().min(1).max(60_000).default(1000),
        default_schema: z
          .string()
          .regex(/^[a-z_][a-z0-9_]{0,62}$/)
          .default('public'),
        /** Function allow-list for the analyser; defaults to the built-in list of safe functions. */
        functions: z.array(z.string().regex(/^[a-z_][a-z0-9_]*$/)).optional(),
        allow_catalogs: z.boolean().default(false),
        /** Without a url: run the database tools on an embedded PGlite with demo data (a superuser; see SECURITY.md). */
        embedded: z.boolean().default(true),
      })
      .strict()
      .default({}),
    /** Named upstreams for call_api (src/tools/api/): the model names one and gives a path under it. */
    apis: z
      .record(
        z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'an upstream name (letters, digits, "_", ".", "-")'),
        z
          .object({
            base_url: z.string().url(),
            /** Sent on every request; values are secrets (`${ENV}`): never logged, returned or audited. */
            headers: z
              .record(
                z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/, 'an HTTP header name'),
                z
                  .string()
                  .max(8192)
                  .regex(/^[^\r\n\0]*$/, 'a header value without CR, LF or NUL'),
              )
              .default({}),
            methods: z
              .array(z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']))
              .min(1)
              .default(['GET', 'HEAD']),
            path_prefixes: z.array(z.string().regex(/^\//, 'a path starting with "/"')).min(1).default(['/']),
            timeout_ms: z.number().int().min(10).max(600_000).default(10_000),
            retries: z.number().int().min(0).max(10).default(2),
            retry_backoff_ms: z.number().int().min(1).max(60_000).default(100),
            /** Per principal on this upstream: a tier name or a bucket; default: the principal's tier. */
            rate: z.union([z.string().min(1), tier]).optional(),
            /** One bucket shared by every principal on this upstream (the upstream's own quota). */
            rate_total: tier.optional(),
            cache_ttl_s: z.number().int().min(0).max(86_400).default(0),
            max_response_bytes: z
              .number()
              .int()
              .min(1)
              .max(256 * 1024 * 1024)
              .default(1024 * 1024),
            /** May reach loopback, private, link-local and unique-local addresses. */
            internal: z.boolean().default(false),
            /** When set, every resolved address must also be inside one of these ranges. */
            allowed_cidrs: z.array(z.string().min(1)).optional(),
            follow_redirects: z.number().int().min(0).max(10).default(0),
            breaker: z
              .object({
                failures: z.number().int().min(1).max(1000).default(5),
                cooldown_ms: z.number().int().min(10).max(3_600_000).default(30_000),
              })
              .strict()
              .default({}),
            max_connections: z.number().int().min(1).max(1024).default(16),
          })
          .strict(),
      )
      .optional(),
    javascript: z
      .object({
        memory_mb: z.number().int().min(8).max(4096).default(64),
        timeout_ms: z.number().int().min(10).max(600_000).default(2000),
        max_code_bytes: z
          .number()
          .int()
          .min(16)
          .max(1024 * 1024)
          .default(64 * 1024),
        max_output_bytes: z
          .number()
          .int()
          .min(64)
          .max(16 * 1024 * 1024)
          .default(64 * 1024),
      })
      .strict()
      .default({}),
    execution: z
      .object({
        timeout_ms: z.number().int().min(10).max(600_000).default(10_000),
        filesystem_pool: pool.default({ size: 2, max_queue: 64, heap_mb: 256 }),
        javascript_pool: pool.default({ size: 2, max_queue: 16, heap_mb: 512 }),
      })
      .strict()
      .default({}),
    policy: z
      .object({
        wasm: z.string().optional(),
        data: z.string().optional(),
      })
      .strict()
      .default({}),
    audit: z
      .object({
        backend: z.enum(['file', 'postgres']).default('file'),
        path: z.string().default('.bulwark/audit.jsonl'),
        durability: z.enum(['fsync', 'batch', 'async']).default('fsync'),
        batch_ms: z.number().int().min(1).max(60_000).default(50),
        /** One hash chain per stream (the PostgreSQL backend; also the checkpoint origin). */
        stream: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,128}$/, 'letters, digits, ".", "_", "-"')
          .default('default'),
        postgres_url: z.string().min(1).optional(),
        max_line_bytes: z
          .number()
          .int()
          .min(4096)
          .max(1024 * 1024)
          .default(64 * 1024),
        rotation: z
          .object({
            max_bytes: z.number().int().min(4096).optional(),
            max_age_s: z.number().int().min(1).optional(),
          })
          .strict()
          .optional(),
        checkpoint: z
          .object({
            /** Signer key (note format), or a file holding it; without it no checkpoints are written. */
            private_key: z.string().min(1).optional(),
            /** Verifier keys (note format) or files; keep old keys listed after a key rotation. */
            public_keys: z.array(z.string().min(1)).default([]),
            every_records: z.number().int().min(1).max(1_000_000).default(1000),
            every_ms: z.number().int().min(10).max(3_600_000).default(1000),
            mirror_path: z.string().min(1).optional(),
            origin: z
              .string()
              .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces')
              .optional(),
          })
          .strict()
          .optional(),
        /**
         * Start a new log with a genesis record (stream, creation time, signing keys, policy revision).
         * Default: when checkpoints are signed. `audit verify --require-genesis` requires it of a signed log.
         */
        genesis: z.boolean().optional(),
        /**
         * C2SP tlog-witnesses that cosign each checkpoint (file backend, with checkpoint signing): the
         * submission prefix URL and the witness's cosignature/v1 verifier key (NAME+KEYID+BASE64, type 0x04).
         */
        witnesses: z
          .array(
            z
              .object({
                name: z.string().min(1),
                url: z.string().url(),
                key: z.string().min(1),
              })
              .strict(),
          )
          .default([]),
        /** How many of the witnesses must cosign a checkpoint for verify to accept it (default: all). */
        witness_quorum: z.number().int().min(1).optional(),
      })
      .strict()
      .default({}),
    observability: z
      .object({
        log_level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
      })
      .strict()
      .default({}),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
