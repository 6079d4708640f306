# Row filters (issue 13 item 3): the row_filters obligation, as data the gate
# applies by rewriting the query (src/analysis/sql-row-filter.ts). The default
# data ships an example for a "customer" role that no default principal holds;
# these tests grant it the database tools the way an operator would.
package bulwark.row_filters_test

import data.bulwark.authz

customer_role := {"tools": ["describe_table", "list_tables", "query_database"]}

customer_tables := {
	"analyst": ["public.*"],
	"developer": ["public.*", "analytics.*"],
	"admin": ["*"],
	"customer": ["public.customers", "public.orders"],
}

query(id, roles, tables) := {
	"principal": {"id": id, "roles": roles, "auth": "api_key"},
	"tool": "query_database",
	"args": {},
	"facts": {"sql": {"statements": 1, "kind": "select", "tables": tables, "functions": []}},
	"context": {"transport": "http", "client_ip": "", "time": "2026-01-01T00:00:00Z", "request_id": "r"},
}

by_customer(i) := d if {
	d := authz.decision with input as i
		with data.bulwark.roles.customer as customer_role
		with data.bulwark.database.tables as customer_tables
}

orders_by_principal := {"table": "public.orders", "column": "customer_id", "op": "=", "value": {"principal": "id"}}

orders_not_refunded := {"table": "public.orders", "column": "status", "op": "<>", "value": {"const": "refunded"}}

customers_by_principal := {"table": "public.customers", "column": "id", "op": "=", "value": {"principal": "id"}}

test_example_filters_orders_by_the_principal if {
	d := by_customer(query("7", ["customer"], ["public.orders"]))
	d.allow
	d.obligations.row_filters == [orders_by_principal, orders_not_refunded]
}

test_only_tables_the_query_reads_are_filtered if {
	d := by_customer(query("7", ["customer"], ["public.customers", "public.orders"]))
	d.obligations.row_filters == [orders_by_principal, customers_by_principal, orders_not_refunded] # sorted as objects (by column first)
	e := by_customer(query("7", ["customer"], ["public.customers"]))
	e.obligations.row_filters == [customers_by_principal]
}

test_no_obligation_when_nothing_is_filtered if {
	d := by_customer(query("7", ["analyst"], ["public.orders"]))
	d.allow
	not "row_filters" in object.keys(d.obligations)

	# the default data: analysts read orders unfiltered
	e := authz.decision with input as query("7", ["analyst"], ["public.orders"])
	not "row_filters" in object.keys(e.obligations)
}

test_filters_are_for_query_database_only if {
	i := object.union(query("7", ["customer"], ["public.orders"]), {"tool": "describe_table"})
	d := by_customer(i)
	d.allow
	not "row_filters" in object.keys(d.obligations)
}

test_no_obligation_when_denied if {
	d := by_customer(query("7", ["customer"], ["public.users"]))
	not d.allow
	"sql.table_not_allowed" in d.reasons
	d.obligations == {}
}

test_a_granting_role_without_the_filter_reads_unfiltered if {
	# analyst grants query_database and reads public.orders unfiltered: the most generous role wins
	d := by_customer(query("7", ["customer", "analyst"], ["public.orders"]))
	d.allow
	not "row_filters" in object.keys(d.obligations)
}

test_a_role_that_does_not_grant_the_tool_adds_no_filter if {
	# reader grants no database tool, so its filters (if any) are not the call's
	d := authz.decision with input as query("7", ["analyst", "reader"], ["public.orders"])
		with data.bulwark.database.row_filters as {"reader": [orders_by_principal]}
	d.allow
	not "row_filters" in object.keys(d.obligations)
}

test_two_filtering_roles_apply_both if {
	region := {"table": "public.orders", "column": "region", "op": "in", "value": {"const": ["north", "south"]}}
	d := authz.decision with input as query("7", ["analyst", "developer"], ["public.orders"])
		with data.bulwark.database.row_filters as {"analyst": [orders_by_principal], "developer": [region]}
	d.obligations.row_filters == [orders_by_principal, region]
}

test_table_names_match_case_insensitively if {
	d := authz.decision with input as query("7", ["analyst"], ["public.orders"])
		with data.bulwark.database.row_filters as {"analyst": [{"table": "PUBLIC.Orders", "column": "x", "op": "is_null"}]}
	d.obligations.row_filters == [{"table": "PUBLIC.Orders", "column": "x", "op": "is_null"}]
}

test_malformed_entries_are_passed_on_for_the_gate_to_refuse if {
	# a filter the policy cannot read must not vanish: the gate refuses it (fail closed)
	bad := {"tabel": "public.orders", "column": "customer_id", "op": "="}
	d := authz.decision with input as query("7", ["analyst"], ["public.users"])
		with data.bulwark.database.row_filters as {"analyst": [bad]}
	d.allow
	d.obligations.row_filters == [bad]
	e := authz.decision with input as query("7", ["analyst"], ["public.users"])
		with data.bulwark.database.row_filters as {"analyst": {"public.orders": "x"}}
	e.obligations.row_filters == [{"invalid": "row_filters of a role is not a list"}]
}

test_shipped_row_filters_are_normalised if {
	every _, filters in data.bulwark.database.row_filters {
		every f in filters {
			f.table == lower(f.table)
			f.column == lower(f.column)
			f.op in ["=", "<>", "in", "is_null", "is_not_null"]
		}
	}
}
