# Unit tests for bulwark.authz: every role, every deny rule, the obligation
# semantics and the branches the default data does not reach (data overrides).
# The shared declarative cases live in testdata/cases/cases.json (cases_test.rego).
package bulwark.authz_test

import data.bulwark.authz

root := "/srv/data"

principal(roles) := {"id": "u-1", "roles": roles, "auth": "api_key"}

file_facts(canonical, kind, nlink, ext) := {"path": {
	"canonical": canonical,
	"root": root,
	"kind": kind,
	"size": 10,
	"nlink": nlink,
	"extension": ext,
}}

call(roles, tool, facts) := {
	"principal": principal(roles),
	"tool": tool,
	"args": {},
	"facts": facts,
	"context": {"transport": "stdio", "client_ip": "", "time": "2026-01-01T00:00:00Z", "request_id": "r"},
}

read(roles, canonical) := call(roles, "read_file", file_facts(canonical, "file", 1, ".txt"))

select(roles, tables, functions) := call(roles, "query_database", {"sql": {
	"statements": 1,
	"kind": "select",
	"tables": tables,
	"functions": functions,
}})

api(roles, upstream, method) := call(roles, "call_api", {"url": {
	"upstream": upstream,
	"method": method,
	"path": "/",
	"addresses": ["192.0.2.1"],
}})

js(roles, n) := call(roles, "run_javascript", {"code": {"bytes": n, "sha256": "x"}})

allowed(i) if {
	d := authz.decision with input as i
	d.allow == true
	d.reasons == []
}

denied_with(i, reason) if {
	d := authz.decision with input as i
	d.allow == false
	reason in d.reasons
	d.obligations == {}
}

# ---------------------------------------------------------------- decision shape

test_decision_always_has_three_keys if {
	d := authz.decision with input as {}
	object.keys(d) == {"allow", "reasons", "obligations"}
	d.allow == false
	d.reasons == ["policy.input_malformed", "policy.no_role_grants_tool"]
}

test_parts_match_decision if {
	i := select(["analyst"], ["public.orders"], [])
	d := authz.decision with input as i
	authz.allow == d.allow with input as i
	authz.reasons == d.reasons with input as i
	authz.obligations == d.obligations with input as i
	authz.deny == set() with input as i
	authz.deny == {"policy.no_role_grants_tool"} with input as read(["nobody"], "/srv/data/a")
}

test_decision_defined_without_data if {
	d := authz.decision with input as read(["admin"], "/srv/data/a.txt")
		with data.bulwark.roles as {}
		with data.bulwark.filesystem as {}
		with data.bulwark.database as {}
		with data.bulwark.api as {}
		with data.bulwark.javascript as {}
	d.allow == false
	d.reasons == ["policy.no_role_grants_tool"]
}

test_reasons_sorted_and_deduplicated if {
	i := call(["reader"], "read_file", file_facts("/etc/x.pem", "directory", 1, ".pem"))
	d := authz.decision with input as i
	d.reasons == ["path.blocked_extension", "path.kind_not_allowed", "path.outside_root"]
}

# A check that is undefined denies instead of silently dropping every reason.
never(_) := "x" if false

test_undefined_check_fails_closed if {
	denied_with(read(["admin"], "/srv/data/a.txt"), "policy.internal_error") with authz.blocked_name as never
	denied_with(select(["admin"], [], []), "policy.internal_error") with authz.table_not_allowed as never
	denied_with(api(["admin"], "x", "GET"), "policy.internal_error") with authz.upstream_not_allowed as never
	denied_with(read(["admin"], "/srv/data/a.txt"), "policy.internal_error") with authz.family_denials as never
}

test_missing_database_data_fails_closed if {
	# no table grants and no function allow-list: deny, do not skip the checks
	denied_with(select(["admin"], [], ["pg_sleep"]), "sql.function_not_allowed") with data.bulwark.database as null
	denied_with(select(["admin"], ["public.a"], []), "sql.table_not_allowed") with data.bulwark.database as null
}

# ---------------------------------------------------------------- roles

test_reader_file_tools if {
	allowed(read(["reader"], "/srv/data/a.txt"))
	allowed(call(["reader"], "list_directory", file_facts("/srv/data", "directory", 3, "")))
	allowed(call(["reader"], "search_files", file_facts("/srv/data/sub", "directory", 2, "")))
	allowed(call(["reader"], "file_info", file_facts("/srv/data/a.txt", "file", 1, ".txt")))
}

test_reader_nothing_else if {
	denied_with(select(["reader"], ["public.orders"], []), "policy.no_role_grants_tool")
	denied_with(call(["reader"], "list_tables", {}), "policy.no_role_grants_tool")
	denied_with(api(["reader"], "github", "GET"), "policy.no_role_grants_tool")
	denied_with(call(["reader"], "api_stats", {}), "policy.no_role_grants_tool")
	denied_with(js(["reader"], 1), "policy.no_role_grants_tool")
}

test_analyst_file_and_database if {
	allowed(read(["analyst"], "/srv/data/a.txt"))
	allowed(select(["analyst"], ["public.orders"], ["count"]))
	allowed(call(["analyst"], "list_tables", {}))
	allowed(call(["analyst"], "describe_table", {"sql": {"tables": ["public.orders"]}}))
	denied_with(api(["analyst"], "github", "GET"), "policy.no_role_grants_tool")
	denied_with(js(["analyst"], 1), "policy.no_role_grants_tool")
}

test_developer_everything_but_hardlinks if {
	allowed(read(["developer"], "/srv/data/a.txt"))
	allowed(select(["developer"], ["analytics.events"], []))
	allowed(api(["developer"], "github", "GET"))
	allowed(call(["developer"], "api_stats", {}))
	allowed(js(["developer"], 10))
	denied_with(call(["developer"], "read_file", file_facts("/srv/data/h", "file", 2, "")), "path.hardlink")
}

test_admin_everything if {
	every t in ["read_file", "list_directory", "search_files", "file_info", "query_database", "list_tables", "describe_table", "call_api", "api_stats", "run_javascript"] {
		t in data.bulwark.roles.admin.tools
	}
	allowed(call(["admin"], "read_file", file_facts("/srv/data/h", "file", 5, "")))
	allowed(api(["admin"], "anything", "DELETE"))
	allowed(select(["admin"], ["secret.stuff"], []))
}

test_unknown_role_and_tool if {
	denied_with(read(["root"], "/srv/data/a.txt"), "policy.no_role_grants_tool")
	denied_with(call(["admin"], "rm_rf", {}), "policy.no_role_grants_tool")
}

# ---------------------------------------------------------------- malformed input

test_input_malformed if {
	denied_with({"tool": "read_file"}, "policy.input_malformed")
	denied_with({"principal": "admin", "tool": "read_file"}, "policy.input_malformed")
	denied_with({"principal": {"id": 1, "roles": ["admin"]}, "tool": "read_file"}, "policy.input_malformed")
	denied_with({"principal": {"id": "u", "roles": "admin"}, "tool": "read_file"}, "policy.input_malformed")
	denied_with({"principal": {"id": "u", "roles": ["admin", 1]}, "tool": "read_file"}, "policy.input_malformed")
	denied_with({"principal": {"id": "u", "roles": ["admin"]}}, "policy.input_malformed")
	denied_with({"principal": {"id": "u", "roles": ["admin"]}, "tool": 3}, "policy.input_malformed")
}

# ---------------------------------------------------------------- filesystem

test_path_facts_invalid if {
	denied_with(call(["reader"], "read_file", {}), "policy.facts_invalid")
	denied_with(call(["reader"], "read_file", {"path": "/srv/data/a"}), "policy.facts_invalid")
	f := file_facts("/srv/data/a", "file", 1, "")
	denied_with(call(["reader"], "read_file", {"path": object.remove(f.path, ["extension"])}), "policy.facts_invalid")
	denied_with(call(["reader"], "read_file", {"path": object.union(f.path, {"root": 1})}), "policy.facts_invalid")
	denied_with(call(["reader"], "read_file", {"path": object.union(f.path, {"kind": null})}), "policy.facts_invalid")
	denied_with(call(["reader"], "read_file", {"path": object.union(f.path, {"canonical": []})}), "policy.facts_invalid")
}

test_outside_root if {
	denied_with(read(["admin"], "/srv/database/x.txt"), "path.outside_root")
	denied_with(read(["admin"], "/srv/data/./x.txt"), "path.outside_root")
	denied_with(read(["admin"], "/srv/data/a/../../x.txt"), "path.outside_root")
	allowed(call(["admin"], "list_directory", file_facts("/srv/data", "directory", 2, "")))
}

test_relative_root_refused if {
	i := call(["admin"], "list_directory", {"path": {"canonical": "srv", "root": "srv", "kind": "directory", "size": 1, "nlink": 2, "extension": ""}})
	denied_with(i, "path.outside_root")
}

test_filesystem_root_slash if {
	i := call(["admin"], "read_file", {"path": {"canonical": "/a.txt", "root": "/", "kind": "file", "size": 1, "nlink": 1, "extension": ".txt"}})
	allowed(i)
}

test_root_with_trailing_slash if {
	i := call(["admin"], "read_file", {"path": {"canonical": "/srv/data/a.txt", "root": "/srv/data/", "kind": "file", "size": 1, "nlink": 1, "extension": ".txt"}})
	allowed(i)
}

test_root_allow_list if {
	allowed(read(["reader"], "/srv/data/a.txt")) with data.bulwark.filesystem.roots as ["/srv/data", "/srv/other"]
	denied_with(read(["reader"], "/srv/data/a.txt"), "path.root_not_allowed") with data.bulwark.filesystem.roots as ["/srv/other"]
}

test_kind_rules if {
	denied_with(call(["reader"], "read_file", file_facts("/srv/data/d", "directory", 2, "")), "path.kind_not_allowed")
	denied_with(call(["reader"], "list_directory", file_facts("/srv/data/a", "file", 1, "")), "path.kind_not_allowed")
	denied_with(call(["reader"], "search_files", file_facts("/srv/data/a", "file", 1, "")), "path.kind_not_allowed")
	denied_with(call(["reader"], "file_info", file_facts("/srv/data/s", "other", 1, "")), "path.kind_not_allowed")
	denied_with(call(["reader"], "read_file", file_facts("/srv/data/s", "symlink", 1, "")), "path.kind_not_allowed")
}

test_hardlink_rules if {
	denied_with(call(["reader"], "read_file", file_facts("/srv/data/h", "file", 2, "")), "path.hardlink")
	denied_with(call(["reader"], "file_info", file_facts("/srv/data/h", "file", 2, "")), "path.hardlink")

	# directories always have nlink >= 2
	allowed(call(["reader"], "list_directory", file_facts("/srv/data/d", "directory", 9, "")))

	# admin's role-level override; global override
	allowed(call(["admin"], "read_file", file_facts("/srv/data/h", "file", 2, "")))
	allowed(call(["reader"], "read_file", file_facts("/srv/data/h", "file", 2, ""))) with data.bulwark.filesystem.allow_hardlinks as true
}

test_hardlink_override_needs_a_granting_role if {
	# a role that grants nothing for this tool cannot lend its hard-link override
	i := call(["reader", "linker"], "read_file", file_facts("/srv/data/h", "file", 2, ""))
	denied_with(i, "path.hardlink") with data.bulwark.roles.linker as {"tools": [], "filesystem": {"allow_hardlinks": true}}
}

test_blocked_extensions if {
	denied_with(call(["admin"], "read_file", file_facts("/srv/data/a.pem", "file", 1, ".pem")), "path.blocked_extension")
	denied_with(call(["admin"], "read_file", file_facts("/srv/data/a.PEM", "file", 1, ".PEM")), "path.blocked_extension")
	denied_with(call(["admin"], "read_file", file_facts("/srv/data/a.tar.key", "file", 1, "")), "path.blocked_extension")
	denied_with(call(["admin"], "read_file", file_facts("/srv/data/.env", "file", 1, "")), "path.blocked_extension")
	allowed(call(["admin"], "read_file", file_facts("/srv/data/env.txt", "file", 1, ".txt")))
}

test_blocked_extension_from_the_name_not_the_facts if {
	# the analyser reported no extension; the name still ends in .key
	denied_with(call(["admin"], "read_file", file_facts("/srv/data/a.tar.key", "file", 1, "")), "path.blocked_extension")
	allowed(call(["admin"], "read_file", file_facts("/srv/data/README", "file", 1, "")))
	allowed(call(["admin"], "read_file", file_facts("/srv/data/key", "file", 1, "")))
}

# The policy case-folds only the input; the data must be normalised (README.md).
test_default_data_is_normalised if {
	fs := data.bulwark.filesystem
	every e in fs.blocked_extensions {
		e == lower(e)
		startswith(e, ".")
	}
	every n in fs.blocked_names {
		n == lower(n)
		not contains(n, "/")
	}
	every f in data.bulwark.database.functions {
		f == lower(f)
	}
	every _, patterns in data.bulwark.database.tables {
		every p in patterns {
			p == lower(p)
		}
	}
	every p in data.bulwark.database.denied_tables {
		p == lower(p)
	}
	every _, columns in data.bulwark.database.redact_columns {
		every c in columns {
			c == lower(c)
		}
	}
	every _, methods in data.bulwark.api.methods {
		every m in methods {
			m == upper(m)
		}
	}
}

test_blocked_names if {
	denied_with(call(["admin"], "list_directory", file_facts("/srv/data/.git", "directory", 2, ".git")), "path.blocked_name")
	denied_with(call(["admin"], "read_file", file_facts("/srv/data/x/.SSH/known_hosts", "file", 1, "")), "path.blocked_name")
	denied_with(call(["admin"], "read_file", file_facts("/srv/data/id_rsa", "file", 1, "")), "path.blocked_name")
}

test_blocked_names_above_root_ignored if {
	i := call(["admin"], "read_file", {"path": {"canonical": "/home/u/.git/data/a.txt", "root": "/home/u/.git/data", "kind": "file", "size": 1, "nlink": 1, "extension": ".txt"}})
	allowed(i)
}

# ---------------------------------------------------------------- database

test_sql_facts_invalid if {
	denied_with(call(["analyst"], "query_database", {}), "policy.facts_invalid")
	denied_with(call(["analyst"], "query_database", {"sql": {"tables": ["public.a"]}}), "policy.facts_invalid")
	denied_with(call(["analyst"], "query_database", {"sql": {"statements": 1, "kind": "select", "tables": "public.a", "functions": []}}), "policy.facts_invalid")
	denied_with(call(["analyst"], "query_database", {"sql": {"statements": 1, "kind": "select", "tables": [1], "functions": []}}), "policy.facts_invalid")
	denied_with(call(["analyst"], "query_database", {"sql": {"statements": "1", "kind": "select", "tables": [], "functions": []}}), "policy.facts_invalid")
	denied_with(call(["analyst"], "describe_table", {}), "policy.facts_invalid")
	denied_with(call(["analyst"], "describe_table", {"sql": {"tables": []}}), "policy.facts_invalid")
	denied_with(call(["analyst"], "describe_table", {"sql": {"tables": ["public.a"], "functions": "x"}}), "policy.facts_invalid")
}

test_list_tables_needs_no_facts if {
	allowed(call(["analyst"], "list_tables", {}))
}

test_sql_statement_rules if {
	i := call(["analyst"], "query_database", {"sql": {"statements": 0, "kind": "select", "tables": [], "functions": []}})
	denied_with(i, "sql.multi_statement")
	j := call(["analyst"], "query_database", {"sql": {"statements": 1, "kind": "update", "tables": ["public.a"], "functions": []}})
	denied_with(j, "sql.kind_not_allowed")
	allowed(call(["analyst"], "query_database", {"sql": {"statements": 1, "kind": "SELECT", "tables": [], "functions": []}}))
}

test_table_rules if {
	allowed(select(["analyst"], ["public.orders", "Public.Customers"], []))
	denied_with(select(["analyst"], ["hr.salaries"], []), "sql.table_not_allowed")
	denied_with(select(["admin"], ["HR.Salaries"], []), "sql.table_not_allowed")
	denied_with(select(["analyst"], ["public."], []), "sql.table_not_allowed")
	denied_with(select(["analyst"], ["public.a.b"], []), "sql.table_not_allowed")
	denied_with(select(["analyst"], ["publicity.a"], []), "sql.table_not_allowed")
	denied_with(select(["analyst"], ["orders"], []), "sql.table_not_allowed")
	denied_with(select(["analyst"], ["analytics.events"], []), "sql.table_not_allowed")
}

test_exact_table_grant if {
	allowed(select(["analyst"], ["sales.q1"], [])) with data.bulwark.database.tables.analyst as ["sales.q1"]
	denied_with(select(["analyst"], ["sales.q2"], []), "sql.table_not_allowed") with data.bulwark.database.tables.analyst as ["sales.q1"]
}

test_denied_table_glob if {
	denied_with(select(["admin"], ["hr.people"], []), "sql.table_not_allowed") with data.bulwark.database.denied_tables as ["hr.*"]
}

test_table_grant_needs_a_granting_role if {
	# the reader role grants no database tool, so its table list must not count
	i := select(["reader", "analyst"], ["hr2.x"], [])
	denied_with(i, "sql.table_not_allowed") with data.bulwark.database.tables.reader as ["*"]
}

test_function_rules if {
	allowed(select(["analyst"], [], ["count", "SUM", "pg_catalog.max"]))
	denied_with(select(["analyst"], [], ["pg_sleep"]), "sql.function_not_allowed")
	denied_with(select(["analyst"], [], ["pg_catalog.pg_sleep"]), "sql.function_not_allowed")
	denied_with(select(["analyst"], [], ["public.count"]), "sql.function_not_allowed")
	i := call(["analyst"], "describe_table", {"sql": {"tables": ["public.a"], "functions": ["lo_import"]}})
	denied_with(i, "sql.function_not_allowed")
}

# ---------------------------------------------------------------- api

test_url_rules if {
	denied_with(call(["developer"], "call_api", {}), "policy.facts_invalid")
	denied_with(call(["developer"], "call_api", {"url": {"upstream": 1, "method": "GET"}}), "policy.facts_invalid")
	denied_with(call(["developer"], "call_api", {"url": {"upstream": "github"}}), "policy.facts_invalid")
	denied_with(api(["developer"], "evil", "GET"), "url.upstream_not_allowed")
	denied_with(api(["developer"], "github", "DELETE"), "url.method_not_allowed")
	allowed(api(["developer"], "httpbin", "head"))
	allowed(api(["admin"], "evil", "PATCH"))
}

test_api_stats_needs_no_facts if {
	allowed(call(["developer"], "api_stats", {}))
}

# ---------------------------------------------------------------- javascript

test_code_rules if {
	denied_with(call(["developer"], "run_javascript", {}), "policy.facts_invalid")
	denied_with(call(["developer"], "run_javascript", {"code": {"bytes": "12"}}), "policy.facts_invalid")
	denied_with(js(["developer"], 65537), "code.too_large")
	allowed(js(["developer"], 65536))
	allowed(js(["developer"], 10000000)) with data.bulwark.javascript as {}
}

# ---------------------------------------------------------------- obligations

test_obligations_per_role if {
	d1 := authz.decision with input as read(["reader"], "/srv/data/a")
	d1.obligations == {"max_bytes": 1048576, "timeout_ms": 5000}
	d2 := authz.decision with input as select(["analyst"], [], [])
	d2.obligations == {"max_bytes": 4194304, "timeout_ms": 10000, "max_rows": 1000, "redact_columns": ["email", "phone", "ssn"], "max_plan_cost": 100000000, "max_plan_rows": 1000000000}
	d3 := authz.decision with input as js(["developer"], 1)
	d3.obligations == {"max_bytes": 8388608, "timeout_ms": 15000, "max_rows": 5000, "memory_mb": 64}
	d4 := authz.decision with input as select(["admin"], [], [])
	d4.obligations == {"max_bytes": 16777216, "timeout_ms": 30000, "max_rows": 10000, "memory_mb": 128, "max_plan_cost": 300000000, "max_plan_rows": 10000000000}
}

# ---------------------------------------------------------------- cost gate

# The shipped limits (policies/data.json, database.plan_limits; README "Database"
# gives the reasoning): cost 10,000 per ms of the role's timeout_ms, rows
# 1,000,000 per row of its max_rows; "*" for a role without an entry.
default_plans := {
	"analyst": {"max_plan_cost": 100000000, "max_plan_rows": 1000000000},
	"developer": {"max_plan_cost": 150000000, "max_plan_rows": 5000000000},
	"admin": {"max_plan_cost": 300000000, "max_plan_rows": 10000000000},
	"*": {"max_plan_cost": 100000000, "max_plan_rows": 1000000000},
}

test_plan_limits_shipped_data if {
	data.bulwark.database.plan_limits == default_plans
}

test_plan_limits_by_default if {
	a := authz.decision with input as select(["analyst"], ["public.users"], [])
	a.allow
	a.obligations.max_plan_cost == 100000000
	a.obligations.max_plan_rows == 1000000000
	d := authz.decision with input as select(["developer"], ["public.users"], [])
	d.obligations.max_plan_cost == 150000000
	d.obligations.max_plan_rows == 5000000000
	ad := authz.decision with input as select(["admin"], ["public.users"], [])
	ad.obligations.max_plan_cost == 300000000
	ad.obligations.max_plan_rows == 10000000000

	# several granting roles: the most generous
	both := authz.decision with input as select(["analyst", "developer"], ["public.users"], [])
	both.obligations.max_plan_cost == 150000000
	both.obligations.max_plan_rows == 5000000000
}

test_plan_limits_default_entry_for_a_role_without_its_own if {
	i := call(["customer"], "query_database", {"sql": {"statements": 1, "kind": "select", "tables": ["public.customers"], "functions": []}})
	d := authz.decision with input as i
		with data.bulwark.roles.customer as {"tools": ["query_database"]}
		with data.bulwark.database.tables.customer as ["public.customers"]
	d.allow
	d.obligations.max_plan_cost == 100000000
	d.obligations.max_plan_rows == 1000000000
}

admin_unlimited := object.union(object.remove(default_plans, {"admin"}), {"admin": {}})

test_plan_limits_empty_entry_is_unlimited if {
	d := authz.decision with input as select(["admin"], ["public.users"], []) with data.bulwark.database as with_plans(admin_unlimited)
	d.allow
	not "max_plan_cost" in object.keys(d.obligations)
	not "max_plan_rows" in object.keys(d.obligations)

	# and, being the most generous, it lifts the gate for a principal that holds it with another role
	both := authz.decision with input as select(["analyst", "admin"], ["public.users"], []) with data.bulwark.database as with_plans(admin_unlimited)
	not "max_plan_cost" in object.keys(both.obligations)
}

test_plan_limits_none_without_plan_limits_data if {
	d := authz.decision with input as select(["analyst"], ["public.users"], []) with data.bulwark.database as object.remove(data.bulwark.database, {"plan_limits"})
	d.allow
	not "max_plan_cost" in object.keys(d.obligations)
	not "max_plan_rows" in object.keys(d.obligations)
}

test_default_plan_limits_skipped_for_a_query_marked_cheap if {
	i := call(["analyst"], "query_database", {"sql": {"statements": 1, "kind": "select", "tables": ["public.users"], "functions": [], "fingerprint": "sqlt1:abc"}})
	d := authz.decision with input as i with data.bulwark.database.cheap_queries as ["sqlt1:abc"]
	d.allow
	not "max_plan_cost" in object.keys(d.obligations)
	not "max_plan_rows" in object.keys(d.obligations)
	shipped := authz.decision with input as i
	shipped.obligations.max_plan_cost == 100000000
}

# The tests below give their own limits. `with data.bulwark.database.plan_limits
# as x` would be merged into the shipped entries (the policy reads the parent
# document, and OPA merges a replaced child into it), so they replace the whole
# database document.
with_plans(p) := object.union(object.remove(data.bulwark.database, {"plan_limits"}), {"plan_limits": p})

plan_data := {"analyst": {"max_plan_cost": 10000000, "max_plan_rows": 100000000}, "admin": {"max_plan_cost": 1000000000, "max_plan_rows": 10000000000}, "developer": {"max_plan_cost": 10000000}}

test_plan_limits_per_role if {
	d := authz.decision with input as select(["analyst"], ["public.users"], []) with data.bulwark.database as with_plans(plan_data)
	d.obligations == {"max_bytes": 4194304, "timeout_ms": 10000, "max_rows": 1000, "redact_columns": ["email", "phone", "ssn"], "max_plan_cost": 10000000, "max_plan_rows": 100000000}
}

test_plan_limits_only_for_query_database if {
	i := call(["developer"], "describe_table", {"sql": {"statements": 1, "kind": "describe", "tables": ["public.users"], "functions": []}})
	d := authz.decision with input as i
	d.allow
	not "max_plan_cost" in object.keys(d.obligations)
	j := authz.decision with input as js(["developer"], 1)
	not "max_plan_cost" in object.keys(j.obligations)
	l := authz.decision with input as call(["analyst"], "list_tables", {"sql": {"statements": 1, "kind": "list", "tables": [], "functions": []}})
	not "max_plan_rows" in object.keys(l.obligations)
}

test_plan_limits_most_generous_granting_role if {
	d := authz.decision with input as select(["analyst", "admin"], ["public.users"], []) with data.bulwark.database as with_plans(plan_data)
	d.obligations.max_plan_cost == 1000000000
	d.obligations.max_plan_rows == 10000000000
}

test_plan_limit_omitted_when_a_granting_role_is_unlimited if {
	# developer sets no max_plan_rows: with it among the granting roles, that key is omitted
	d := authz.decision with input as select(["analyst", "developer"], ["public.users"], []) with data.bulwark.database as with_plans(plan_data)
	d.obligations.max_plan_cost == 10000000
	not "max_plan_rows" in object.keys(d.obligations)
}

test_plan_limits_skipped_for_a_query_marked_cheap if {
	i := call(["analyst"], "query_database", {"sql": {"statements": 1, "kind": "select", "tables": ["public.users"], "functions": [], "fingerprint": "sqlt1:abc"}})
	d := authz.decision with input as i with data.bulwark.database as with_plans(plan_data) with data.bulwark.database.cheap_queries as ["sqlt1:abc"]
	d.allow
	not "max_plan_cost" in object.keys(d.obligations)
	not "max_plan_rows" in object.keys(d.obligations)
	other := authz.decision with input as i with data.bulwark.database as with_plans(plan_data) with data.bulwark.database.cheap_queries as ["sqlt1:def"]
	other.obligations.max_plan_cost == 10000000
}

test_plan_limits_need_numbers if {
	i := select(["analyst"], ["public.users"], [])
	d := authz.decision with input as i with data.bulwark.database as with_plans({"analyst": {"max_plan_cost": null, "max_plan_rows": "10"}})
	d.allow
	not "max_plan_cost" in object.keys(d.obligations)
	not "max_plan_rows" in object.keys(d.obligations)

	# a malformed entry does not fall back to "*": the role has an entry, and it sets no number
	f := authz.decision with input as i with data.bulwark.database as with_plans({"analyst": {"max_plan_cost": "1"}, "*": {"max_plan_cost": 5}})
	not "max_plan_cost" in object.keys(f.obligations)
}

test_obligations_most_generous_granting_role if {
	d := authz.decision with input as read(["reader", "analyst"], "/srv/data/a")
	d.obligations == {"max_bytes": 4194304, "timeout_ms": 10000}
}

test_obligations_ignore_non_granting_roles if {
	# the "viewer" role's larger limit does not apply: it does not grant the tool
	i := read(["reader", "viewer"], "/srv/data/a")
	d := authz.decision with input as i with data.bulwark.roles.viewer as {"tools": [], "obligations": {"max_bytes": 99999999}}
	d.obligations == {"max_bytes": 1048576, "timeout_ms": 5000}
}

test_obligations_key_omitted_when_a_granting_role_is_unlimited if {
	i := read(["reader", "free"], "/srv/data/a")
	d := authz.decision with input as i with data.bulwark.roles.free as {"tools": ["read_file"], "obligations": {"timeout_ms": 1}}
	d.obligations == {"timeout_ms": 5000}
}

test_redaction_not_for_file_tools if {
	d := authz.decision with input as read(["analyst"], "/srv/data/a")
	not "redact_columns" in object.keys(d.obligations)
}

test_redaction_without_data if {
	d := authz.decision with input as select(["analyst"], [], []) with data.bulwark.database.redact_columns as null
	not "redact_columns" in object.keys(d.obligations)
}

test_redaction_is_sorted if {
	d := authz.decision with input as select(["analyst"], [], []) with data.bulwark.database.redact_columns.analyst as ["ssn", "email"]
	d.obligations.redact_columns == ["email", "ssn"]
}

# ---------------------------------------------------------------- visible_tools

test_visible_tools_per_role if {
	all := ["read_file", "list_directory", "search_files", "file_info", "query_database", "list_tables", "describe_table", "call_api", "api_stats", "run_javascript"]
	authz.visible_tools == ["file_info", "list_directory", "read_file", "search_files"] with input as {"principal": principal(["reader"]), "tools": all}
	count(authz.visible_tools) == 7 with input as {"principal": principal(["analyst"]), "tools": all}
	count(authz.visible_tools) == 10 with input as {"principal": principal(["developer"]), "tools": all}
	authz.visible_tools == sort(all) with input as {"principal": principal(["admin"]), "tools": array.concat(all, ["zzz", 1])}
	authz.visible_tools == [] with input as {"principal": {"id": "x", "roles": "admin"}, "tools": all}
	authz.visible_tools == [] with input as {"principal": principal(["admin"]), "tools": "read_file"}
	authz.visible_tools == [] with input as {}
}
