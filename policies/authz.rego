# METADATA
# title: Bulwark authorization policy
# description: |
#   Decides every gated MCP tool call from the principal, the tool and the facts the
#   analyser derived. Pure: time and identity arrive in input; no impure builtins.
#   Entrypoints (compiled to wasm): bulwark/authz/decision, bulwark/authz/visible_tools.
#   Data shape, reason codes and obligation semantics: policies/README.md.
#
#   Performance notes (the compiled policy runs on every call; budget p50 20 us):
#   - the wasm planner does not memoise rules; every reference to a rule
#     re-evaluates it. Values used more than once (the granting roles, the deny
#     set, the path segments) are bound to a local once and passed down as
#     function arguments, and each tool family is entered through one guard;
#   - constant sets and objects are rebuilt on every evaluation, so constant
#     tables are written as functions with literal arguments instead;
#   - membership in a data array (`x in data.bulwark...`) runs natively, a Rego
#     loop over data does not. Data is therefore expected normalised (lower-case
#     names, extensions with their dot, upper-case methods; see README.md) and
#     only the input side is case-folded here.
package bulwark.authz

# ---------------------------------------------------------------------------
# Entrypoints
# ---------------------------------------------------------------------------

# decision is defined for every input (malformed input yields a denial).
decision := {
	"allow": allowed,
	"reasons": sort(reasons_set),
	"obligations": obligations_for(allowed, roles),
} if {
	roles := granting_roles
	reasons_set := denials(roles)
	allowed := count(reasons_set) == 0
}

# visible_tools: input {principal, tools: [names]} -> sorted names some role grants.
visible_tools := sort({t |
	is_array(input.tools)
	roles := principal_roles
	some t in input.tools
	is_string(t)
	some r in roles
	tool_granted(t, r)
})

# A role's grant of a tool (conformance.rego adds the test-only profile's).
tool_granted(t, r) if t in data.bulwark.roles[r].tools

# allow, reasons, obligations and deny are parts of decision, for queries and tests.
allow := decision.allow

reasons := decision.reasons

obligations := decision.obligations

deny := denials(granting_roles)

# All deny reasons: input validation, the role grant, and the tool family's
# checks (each family entered through one guard, with the granting roles as an
# argument).
#
# Fail closed: a check that is undefined (a bug, or data of an unexpected
# shape) would make the whole list literal undefined and silently drop every
# reason. Each list is therefore bound first, with an else branch that denies
# with policy.internal_error. Checks are written so that passing needs a
# successful body (`"" if {...} else := "code"`) or so that their inputs are
# always defined (`code if {...} else := ""` over validated facts and the
# always-defined `db`).
denials(roles) := {r | some group in groups; some r in group} if {
	groups := [input_denials, grant_denials(roles), family_denials(roles), profile_denials]
} else := {"policy.internal_error"}

# ---------------------------------------------------------------------------
# Tool families and per-tool constants (tool semantics, not configuration)
# ---------------------------------------------------------------------------

family("read_file") := "file"

family("list_directory") := "file"

family("search_files") := "file"

family("file_info") := "file"

family("query_database") := "sql"

family("describe_table") := "sql"

family("list_tables") := "database"

family("call_api") := "api"

family("api_stats") := "api"

family("run_javascript") := "code"

database_tool(tool) if family(tool) in ["sql", "database"]

# The filesystem object kinds each file tool may act on.
kind_allowed("read_file", "file")

kind_allowed("list_directory", "directory")

kind_allowed("search_files", "directory")

kind_allowed("file_info", "file")

kind_allowed("file_info", "directory")

limit_keys := ["max_bytes", "timeout_ms", "max_rows", "memory_mb"]

# ---------------------------------------------------------------------------
# Input validation and role resolution
# ---------------------------------------------------------------------------

principal_ok if {
	is_object(input.principal)
	is_string(input.principal.id)
	string_array(input.principal.roles)
}

# (a helper rule, because `not is_string(input.tool)` is undefined, not true,
# when input.tool is missing)
tool_ok if is_string(input.tool)

input_denials := {"policy.input_malformed"} if {
	not principal_ok
} else := {"policy.input_malformed"} if {
	not tool_ok
} else := set()

principal_roles contains r if {
	principal_ok
	some r in input.principal.roles
}

# Roles of the principal that grant the requested tool. Every per-role
# permission (tables, upstreams, methods, hard links) and every obligation is
# taken from these roles only, so a role that does not grant the tool can
# neither widen nor loosen anything about the call.
granting_roles contains r if {
	tool_ok
	some r in principal_roles
	input.tool in data.bulwark.roles[r].tools
}

grant_denials(roles) := {"policy.no_role_grants_tool"} if {
	count(roles) == 0
} else := set()

family_denials(roles) := path_denials(roles) if {
	family(input.tool) == "file"
} else := sql_denials(roles) if {
	family(input.tool) == "sql"
} else := url_denials(roles) if {
	input.tool == "call_api"
} else := code_denials if {
	input.tool == "run_javascript"
} else := set()

# ---------------------------------------------------------------------------
# Filesystem
# ---------------------------------------------------------------------------

pf := input.facts.path

path_facts_ok if {
	is_object(pf)
	is_string(pf.canonical)
	is_string(pf.root)
	is_string(pf.kind)
	is_number(pf.nlink)
	is_string(pf.extension)
}

path_denials(_) := {"policy.facts_invalid"} if not path_facts_ok

path_denials(roles) := path_checks(roles) if path_facts_ok

path_checks(roles) := {r | some r in checks; r != ""} if {
	prefix := root_prefix
	segs := lower_segments(pf.canonical, prefix)
	checks := [
		outside_root(prefix),
		root_not_allowed,
		kind_not_allowed,
		hardlink(roles),
		blocked_extension(file_name(segs)),
		blocked_name(segs),
	]
} else := {"policy.internal_error"}

# root_prefix is the root with exactly one trailing slash.
root_prefix := pf.root if endswith(pf.root, "/")

root_prefix := concat("", [pf.root, "/"]) if not endswith(pf.root, "/")

# The lower-cased path segments below the root ([] when the path is the root or
# not below it).
lower_segments(canonical, prefix) := split(lower(trim_prefix(canonical, prefix)), "/") if {
	startswith(canonical, prefix)
	canonical != prefix
} else := []

outside_root(prefix) := "" if {
	startswith(pf.root, "/")
	not dot_segment
	within_root(prefix)
} else := "path.outside_root"

within_root(_) if pf.canonical == pf.root

within_root(prefix) if startswith(pf.canonical, prefix)

dot_segment if contains(concat("", [pf.canonical, "/"]), "/./")

dot_segment if contains(concat("", [pf.canonical, "/"]), "/../")

root_not_allowed := "path.root_not_allowed" if {
	is_array(data.bulwark.filesystem.roots)
	not pf.root in data.bulwark.filesystem.roots
} else := ""

kind_not_allowed := "" if {
	kind_allowed(input.tool, pf.kind)
} else := "path.kind_not_allowed"

hardlink(roles) := "path.hardlink" if {
	pf.kind == "file"
	pf.nlink > 1
	not hardlinks_allowed(roles)
} else := ""

hardlinks_allowed(_) if data.bulwark.filesystem.allow_hardlinks == true

hardlinks_allowed(roles) if {
	some r in roles
	data.bulwark.roles[r].filesystem.allow_hardlinks == true
}

# The reported extension, the extension of the file name itself (not trusting
# the analyser), or the whole lower-cased name is listed: Node's
# extname(".env") is "", so ".env" is caught by its name.
blocked_extension(name) := "path.blocked_extension" if {
	some c in [lower(pf.extension), name_extension(name), name]
	c in data.bulwark.filesystem.blocked_extensions
} else := ""

name_extension(name) := concat("", [".", parts[count(parts) - 1]]) if {
	parts := split(name, ".")
	count(parts) > 1
} else := ""

file_name(segs) := segs[count(segs) - 1] if count(segs) > 0

file_name(segs) := lower(base) if {
	count(segs) == 0
	parts := split(pf.canonical, "/")
	base := parts[count(parts) - 1]
}

# A path segment below the root carries a blocked name (".ssh", "id_rsa", ...).
blocked_name(segs) := "path.blocked_name" if {
	some seg in segs
	seg in data.bulwark.filesystem.blocked_names
} else := ""

# ---------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------

sf := input.facts.sql

sql_base_ok if {
	is_object(sf)
	string_array(sf.tables)
	sql_functions_ok
}

sql_functions_ok if not has_key(sf, "functions")

sql_functions_ok if string_array(sf.functions)

sql_facts_ok if {
	input.tool == "describe_table"
	sql_base_ok
	count(sf.tables) > 0
}

sql_facts_ok if {
	input.tool == "query_database"
	sql_base_ok
	string_array(sf.functions)
	is_number(sf.statements)
	is_string(sf.kind)
}

sql_denials(_) := {"policy.facts_invalid"} if not sql_facts_ok

sql_denials(roles) := sql_checks(roles) if sql_facts_ok

sql_checks(roles) := {r | some r in checks; r != ""} if {
	checks := [
		multi_statement,
		kind_not_select,
		table_not_allowed(roles),
		function_not_allowed,
	]
} else := {"policy.internal_error"}

# The database section of the data, always defined.
default db := {}

db := data.bulwark.database if is_object(data.bulwark.database)

multi_statement := "sql.multi_statement" if {
	input.tool == "query_database"
	sf.statements != 1
} else := ""

kind_not_select := "sql.kind_not_allowed" if {
	input.tool == "query_database"
	lower(sf.kind) != "select"
} else := ""

table_not_allowed(roles) := "sql.table_not_allowed" if {
	denied := object.get(db, "denied_tables", [])
	granted := [p | some r in roles; some p in db.tables[r]]
	some t in sf.tables
	not table_allowed(lower(t), granted, denied)
} else := ""

table_allowed(t, granted, denied) if {
	not table_listed(t, denied)
	table_listed(t, granted)
}

table_listed(t, patterns) if {
	some p in patterns
	table_match(p, t)
}

table_match(p, t) if p == t

table_match("*", _)

table_match(p, t) if {
	endswith(p, ".*")
	prefix := trim_suffix(p, "*")
	startswith(t, prefix)
	rest := trim_prefix(t, prefix)
	rest != ""
	not contains(rest, ".")
}

function_not_allowed := "sql.function_not_allowed" if {
	allowed_fns := object.get(db, "functions", [])
	some f in object.get(sf, "functions", [])
	not function_allowed(lower(f), allowed_fns)
} else := ""

function_allowed(f, allowed_fns) if f in allowed_fns

function_allowed(f, allowed_fns) if {
	startswith(f, "pg_catalog.")
	trim_prefix(f, "pg_catalog.") in allowed_fns
}

# ---------------------------------------------------------------------------
# External APIs
# ---------------------------------------------------------------------------

uf := input.facts.url

url_facts_ok if {
	is_object(uf)
	is_string(uf.upstream)
	is_string(uf.method)
	is_string(uf.path)
}

url_denials(_) := {"policy.facts_invalid"} if not url_facts_ok

url_denials(roles) := {r | some r in checks; r != ""} if {
	url_facts_ok
	checks := [upstream_not_allowed(roles), method_not_allowed(roles), path_not_allowed(roles), path_denied]
} else := {"policy.internal_error"} if url_facts_ok

upstream_not_allowed(roles) := "" if {
	some r in roles
	some u in [uf.upstream, "*"]
	u in data.bulwark.api.upstreams[r]
} else := "url.upstream_not_allowed"

method_not_allowed(roles) := "" if {
	method := upper(uf.method)
	some r in roles
	method in data.bulwark.api.methods[r]
} else := "url.method_not_allowed"

# Paths. The analyser hands over a canonical path relative to the upstream's base
# URL (no dot segments, no empty segments, unreserved characters decoded); a path
# of any other shape is refused here too, so a rule below can never be sidestepped
# by spelling. A granting role that grants the upstream restricts its paths when
# api.paths[role] lists prefixes for that upstream (or for "*"); permissions are
# the union over granting roles, so the call passes when one of them allows it.
path_not_allowed(roles) := "" if {
	path_shape_ok
	path_allowed(roles)
} else := "url.path_not_allowed"

path_shape_ok if {
	startswith(uf.path, "/")
	padded := concat("", [uf.path, "/"])
	not contains(padded, "/../")
	not contains(padded, "/./")
	not contains(uf.path, "//")
	not contains(uf.path, "\\")
}

# No granting role grants the upstream: upstream_not_allowed reports it.
path_allowed(roles) if not upstream_granted_by_any(roles)

path_allowed(roles) if {
	some r in roles
	upstream_granted(r)
	not role_restricts_paths(r)
}

path_allowed(roles) if {
	some r in roles
	upstream_granted(r)
	some u in [uf.upstream, "*"]
	some p in data.bulwark.api.paths[r][u]
	path_under(uf.path, p)
}

upstream_granted_by_any(roles) if {
	some r in roles
	upstream_granted(r)
}

upstream_granted(r) if {
	some u in [uf.upstream, "*"]
	u in data.bulwark.api.upstreams[r]
}

role_restricts_paths(r) if {
	some u in [uf.upstream, "*"]
	is_array(data.bulwark.api.paths[r][u])
}

# Prefixes match whole segments: "/repos" covers "/repos" and "/repos/x", not
# "/reposx"; "/repos/" covers only what is below it; "/" covers everything.
path_under(_, "/")

path_under(path, p) if path == p

path_under(path, p) if {
	endswith(p, "/")
	startswith(path, p)
}

path_under(path, p) if {
	not endswith(p, "/")
	startswith(path, concat("", [p, "/"]))
}

# api.denied_paths ({"<upstream>" or "*": [prefixes]}, lower-case) wins over every
# grant, admin included. Matched case-insensitively: for a deny list the safe
# direction is to match more.
path_denied := "url.path_denied" if {
	path := lower(uf.path)
	some u in [uf.upstream, "*"]
	some p in data.bulwark.api.denied_paths[u]
	path_under(path, p)
} else := ""

# ---------------------------------------------------------------------------
# JavaScript
# ---------------------------------------------------------------------------

cf := input.facts.code

code_facts_ok if {
	is_object(cf)
	is_number(cf.bytes)
}

code_denials := {"policy.facts_invalid"} if {
	not code_facts_ok
} else := {"code.too_large"} if {
	cf.bytes > data.bulwark.javascript.max_code_bytes
} else := set()

# ---------------------------------------------------------------------------
# Obligations
# ---------------------------------------------------------------------------

obligations_for(false, _) := {}

obligations_for(true, roles) := object.union(
	object.union(object.union(limit_obligations(roles), redact_obligation(roles)), plan_obligation(roles)),
	object.union(object.union(row_filter_obligation(roles), column_rule_obligation(roles)), approval_obligation(roles)),
)

# Numeric limits: the most generous granting role wins. A key is emitted only
# when every granting role sets it (a role without the key is unlimited, and
# the configured cap applies); the value is the largest across those roles.
limit_obligations(roles) := {k: v |
	some k, v in object.filter(data.bulwark.roles[r].obligations, limit_keys)
	is_number(v)
} if {
	count(roles) == 1
	some r in roles
} else := {k: v |
	some k in limit_keys
	every r in roles {
		is_number(data.bulwark.roles[r].obligations[k])
	}
	v := max({n | some r in roles; n := data.bulwark.roles[r].obligations[k]})
}

# Redaction (database tools only): a column is redacted only when every
# granting role redacts it (the most generous role wins here too). Emitted
# only when non-empty.
redact_obligation(roles) := {"redact_columns": cols} if {
	database_tool(input.tool)
	cols := redacted_columns(roles, object.get(db, "redact_columns", {}))
	count(cols) > 0
} else := {}

# The cost gate (query_database only): the executor EXPLAINs the query and refuses
# a plan whose estimated total cost or rows exceed these (sql.cost_exceeded).
# From database.plan_limits[role], or plan_limits["*"] for a role without an
# entry of its own (so a role an operator adds is gated too; an entry {} makes a
# role unlimited); as for the numeric limits, a key is emitted only when every
# granting role sets it, with the largest value. A query whose fingerprint is
# listed in database.cheap_queries skips the gate (no obligation, no EXPLAIN).
plan_obligation(roles) := {} if {
	input.tool != "query_database"
} else := {} if {
	input.facts.sql.fingerprint in object.get(db, "cheap_queries", [])
} else := plan_limits(roles, object.get(db, "plan_limits", {}))

plan_limits(roles, by_role) := {k: v |
	some k in ["max_plan_cost", "max_plan_rows"]
	fallback := object.get(by_role, "*", {})
	every r in roles {
		is_number(object.get(object.get(by_role, r, fallback), k, null))
	}
	v := max({n | some r in roles; n := object.get(by_role, r, fallback)[k]})
}

# Row filters (query_database only): database.row_filters[role] lists predicates
# as data, never SQL text: {"table": "schema.table", "column": "name", "op": "=" |
# "<>" | "in" | "is_null" | "is_not_null", "value": {"const": v} | {"principal":
# "id" | "tier" | "auth" | "roles" | "attributes.<name>"}} (no value for the is_*
# ops; "attributes.region" reads input.principal.attributes.region, verified from
# the credential, and a principal without it is refused by the gate). The gate
# rewrites every reference to the table into a filtered subquery (src/analysis/
# sql-row-filter.ts) and refuses a filter it cannot apply (policy_error).
# A table the query reads is filtered only when every granting role filters it
# (a role that reads it unfiltered is the most generous); then the filters of
# all granting roles for it apply together (AND: the stricter reading, since an
# OR across roles is not expressible as a list of predicates). Entries whose
# table is not a string, and a role's row_filters that is not a list, are passed
# on as they are, so that the gate refuses the call (fail closed) instead of the
# policy silently dropping a filter it cannot read.
row_filter_obligation(roles) := {"row_filters": filters} if {
	input.tool == "query_database"
	filters := row_filters_for(roles, object.get(db, "row_filters", {}))
	count(filters) > 0
} else := {}

row_filters_for(roles, by_role) := sort({f |
	some r in roles
	some f in role_row_filters(by_role, r)
	row_filter_applies(f, roles, by_role)
})

role_row_filters(by_role, r) := by_role[r] if {
	is_array(by_role[r])
} else := [{"invalid": "row_filters of a role is not a list"}] if {
	has_key(by_role, r)
} else := []

row_filter_table_ok(f) if {
	is_object(f)
	is_string(f.table)
}

row_filter_applies(f, _, _) if not row_filter_table_ok(f)

# The tables a query reads: named in its text, or reached through a view it names
# (facts.sql.views[].tables, src/analysis/sql-lineage.ts). A filter on a table
# behind a view is emitted too, so the gate refuses the query (sql.row_filter_view):
# a view's definition is not rewritten, so the filter could not hold there.
row_filter_tables contains t if some t in sf.tables

row_filter_tables contains t if {
	some v in object.get(sf, "views", [])
	some t in v.tables
}

# A relation the catalog does not know yet (facts.sql.tables_unknown) may be a
# view over a filtered table: every filtered table counts as read, and the gate
# refuses the query while any filter applies (sql.catalog_unknown_table).
row_filter_tables contains t if {
	count(object.get(sf, "tables_unknown", [])) > 0
	some fs in object.get(db, "row_filters", {})
	is_array(fs)
	some f in fs
	row_filter_table_ok(f)
	t := lower(f.table)
}

row_filter_applies(f, roles, by_role) if {
	row_filter_table_ok(f)
	t := lower(f.table)
	t in row_filter_tables
	every r in roles {
		role_filters_table(by_role, r, t)
	}
}

role_filters_table(by_role, r, t) if {
	some f in role_row_filters(by_role, r)
	row_filter_table_ok(f)
	lower(f.table) == t
}

redacted_columns(roles, by_role) := sort(object.get(by_role, r, [])) if {
	count(roles) == 1
	some r in roles
} else := sort(intersection({{c | some c in object.get(by_role, r, [])} | some r in roles}))

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

string_array(a) if {
	is_array(a)
	every x in a {
		is_string(x)
	}
}

has_key(o, k) if _ = o[k]
