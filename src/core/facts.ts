/**
 * What analysis found out about one call, per tool family. Facts go to the policy (as
 * `input.facts`) and to the audit record; a tool family declares which of them it produces, so its
 * executor reads them typed.
 */

export type PathKind = 'file' | 'directory';

export interface PathFacts {
  readonly canonical: string;
  readonly root: string;
  readonly kind: PathKind;
  readonly size: number;
  readonly nlink: number;
  readonly extension: string;
}

/** A query analysed by the SQL analyser (query_database). */
export interface SqlQueryFacts {
  readonly statements: 1;
  readonly kind: 'select';
  /** Relations read, lower-case "schema.table", sorted; CTE names excluded. */
  readonly tables: readonly string[];
  /** Functions called, lower-case, sorted; pg_catalog-qualified calls reported by their bare name. */
  readonly functions: readonly string[];
  /** Column names referenced (unresolved: last name part), lower-case, sorted; '*' for a star. */
  readonly columns: readonly string[];
  /** Highest $n parameter; the executor must bind exactly this many. */
  readonly params: number;
  /** The top-level LIMIT / FETCH FIRST when it is a constant. */
  readonly limit?: number;
  /** 'sqlt1:' + sha256 of libpg-query's tree without locations and constant values (not pg_query's fingerprint). */
  readonly fingerprint: string;
  /** 'both': node-sql-parser agreed; 'lexical': it could not parse a lexically plain text. */
  readonly agreement: 'both' | 'lexical';
  /**
   * Column lineage resolved against the database's catalog (src/analysis/sql-lineage.ts): per
   * output, the base columns ("schema.table.column") it derives from and whether it is a bare copy;
   * and the base columns used in predicates, joins, grouping, ordering, windows and DISTINCT.
   */
  readonly lineage?: {
    readonly outputs: readonly { readonly name: string; readonly columns: readonly string[]; readonly copy: boolean }[];
    readonly used: readonly string[];
  };
  /**
   * Why no lineage could be computed (an unknown relation, an ambiguous column). Not refused during
   * analysis, so that a table the policy forbids is refused for that reason whether it exists or not
   * (no existence oracle); the executor refuses it before running when masks or column rules apply.
   */
  readonly lineage_unresolved?: readonly string[];
  /**
   * The views and materialized views the query names (src/analysis/sql-lineage.ts viewsRead): each
   * with the relations its definition reads, transitively, and the base columns the query reached
   * through it. The policy applies a table's row filters when the query reaches it through a view
   * too, and the gate then refuses (`sql.row_filter_view`); the record shows what each view exposed.
   */
  readonly views?: readonly { readonly view: string; readonly tables: readonly string[]; readonly columns: readonly string[] }[];
  /**
   * Relations the query reads that the catalog does not know (yet): one could be a view over a
   * row-filtered table, so the policy then emits every filter that applies to the principal and the
   * gate refuses (`sql.catalog_unknown_table`) rather than run the query unfiltered.
   */
  readonly tables_unknown?: readonly string[];
}

/** One table named by describe_table. */
export interface SqlDescribeFacts {
  readonly statements: 1;
  readonly kind: 'describe';
  readonly tables: readonly string[];
  readonly functions: readonly string[];
}

/**
 * What the executor learnt after the decision and the record keeps: the cost gate's plan estimate,
 * the masked columns a query touched or a refused query used.
 */
export interface SqlExecutionFacts {
  plan?: unknown;
  /** Protected columns: masked in the result, refused (the query was), used in predicates as the policy allowed. */
  masks?: { readonly masked?: readonly string[]; readonly refused?: unknown; readonly used?: readonly string[] };
  /**
   * The policy's row filters as applied (issue 13 item 3): the filtered tables the query read, the
   * references rewritten, and sha256 of the analysed text and of the text that ran instead.
   */
  row_filters?: {
    readonly tables: readonly string[];
    readonly references: number;
    readonly text_sha256: string;
    readonly executed_sha256: string;
  };
}

/**
 * The policy's answer to a question asked after the call's decision (a table list_tables would
 * show, a redirect hop call_api would follow). The record keeps each one, since it decided what
 * the caller saw or where the request went.
 */
export interface PolicyAnswerFacts {
  readonly allow: boolean;
  readonly reasons: readonly string[];
  /** Set when the policy could not answer (its failure reason): the answer is then a refusal. */
  readonly error?: string;
  /** Set when the policy allows it only with a human's approval (an `approval` obligation): no hop is approved mid-call. */
  readonly approval_required?: true;
}

/** One table as list_tables asked the policy about it (describe_table's question). */
export interface TableAnswerFacts extends PolicyAnswerFacts {
  readonly table: string;
}

/**
 * list_tables: nothing is known before the decision; the executor records, after it, what the
 * policy answered for each table it listed (capped) and how many it asked about and hid.
 */
export interface SqlListFacts {
  readonly kind: 'list';
  /** In listing order; at most the tool's cap of them (the counts below cover every table). */
  readonly tables_filtered: readonly TableAnswerFacts[];
  readonly tables_asked: number;
  readonly tables_hidden: number;
}

export type SqlFacts = (SqlQueryFacts | SqlDescribeFacts | SqlListFacts) & SqlExecutionFacts;

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface UrlFacts {
  readonly upstream: string;
  readonly method: HttpMethod;
  /** Canonical path below the upstream's base. */
  readonly path: string;
  readonly query: string;
  readonly host: string;
  readonly port: number;
  readonly scheme: 'http' | 'https';
  readonly internal: boolean;
  /** The addresses the host resolved to (at most 16) and how many there were. */
  readonly addresses: readonly string[];
  readonly address_count: number;
  /** Set on a redirect hop's facts: which hop (1 = the first redirect). */
  readonly redirect?: number;
  /**
   * What the executor learnt after the decision: the policy's answer for each redirect hop it
   * asked about, in order (the last one refused when the call was refused at a hop).
   */
  hops?: UrlHopFacts[];
}

export interface UrlHopFacts extends PolicyAnswerFacts {
  readonly redirect: number;
  readonly method: HttpMethod;
  readonly path: string;
}

export interface CodeFacts {
  readonly language: 'javascript';
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * A fixture of the conformance profile (`bulwark serve --profile conformance`, test-only): which
 * fixture or MCP method the call is. The policy allows the family only while that profile serves.
 */
export interface ConformanceFacts {
  readonly fixture: string;
  /** The MCP method a gated pseudo-tool answers (resources/read, prompts/get, ...); absent for a tools/call fixture. */
  readonly method?: string;
}

export interface Facts {
  readonly conformance?: ConformanceFacts;
  readonly path?: PathFacts;
  readonly sql?: SqlFacts;
  readonly url?: UrlFacts;
  readonly code?: CodeFacts;
}
