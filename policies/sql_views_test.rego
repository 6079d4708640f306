# Row filters through views (issue 13, views): a table the query reaches only
# through a view it names (facts.sql.views[].tables, src/analysis/sql-lineage.ts)
# gets its row filters in the obligation too, so that the gate can refuse the
# query (sql.row_filter_view) instead of reading the table whole through the view.
package bulwark.sql_views_test

import data.bulwark.authz

customer_role := {"tools": ["describe_table", "list_tables", "query_database"]}

view_tables := {
	"analyst": ["public.*"],
	"customer": ["public.customers", "public.orders", "public.contacts", "public.order_totals"],
}

query(roles, tables, views) := {
	"principal": {"id": "7", "roles": roles, "auth": "api_key"},
	"tool": "query_database",
	"args": {},
	"facts": {"sql": {"statements": 1, "kind": "select", "tables": tables, "functions": [], "views": views}},
	"context": {"transport": "http", "client_ip": "", "time": "2026-01-01T00:00:00Z", "request_id": "r"},
}

as_customer(i) := d if {
	d := authz.decision with input as i
		with data.bulwark.roles.customer as customer_role
		with data.bulwark.database.tables as view_tables
}

customers_by_principal := {"table": "public.customers", "column": "id", "op": "=", "value": {"principal": "id"}}

contacts := {"view": "public.contacts", "tables": ["public.customers"], "columns": ["public.customers.email"]}

test_filter_of_a_table_behind_a_view_is_emitted if {
	d := as_customer(query(["customer"], ["public.contacts"], [contacts]))
	d.allow
	d.obligations.row_filters == [customers_by_principal]
}

test_views_of_views_reach_their_tables if {
	nested := {"view": "public.order_totals", "tables": ["public.order_view", "public.orders"], "columns": []}
	d := as_customer(query(["customer"], ["public.order_totals"], [nested]))
	d.allow
	count(d.obligations.row_filters) == 2
	every f in d.obligations.row_filters {
		f.table == "public.orders"
	}
}

test_no_filter_when_the_view_reaches_no_filtered_table if {
	plain := {"view": "public.contacts", "tables": ["public.products"], "columns": []}
	d := as_customer(query(["customer"], ["public.contacts"], [plain]))
	d.allow
	not "row_filters" in object.keys(d.obligations)
}

test_no_filter_for_a_role_that_reads_the_table_unfiltered if {
	d := authz.decision with input as query(["analyst"], ["public.contacts"], [contacts])
	d.allow
	not "row_filters" in object.keys(d.obligations)
}

test_query_without_views_unchanged if {
	d := as_customer(query(["customer"], ["public.customers"], []))
	d.obligations.row_filters == [customers_by_principal]
	i := json.remove(query(["customer"], ["public.customers"], []), ["facts/sql/views"])
	e := as_customer(i)
	e.obligations.row_filters == [customers_by_principal]
}

test_an_unknown_relation_brings_every_filter_of_the_role if {
	i := json.patch(query(["customer"], ["public.new_view"], []), [{"op": "add", "path": "/facts/sql/tables_unknown", "value": ["public.new_view"]}])
	d := authz.decision with input as i
		with data.bulwark.roles.customer as customer_role
		with data.bulwark.database.tables as {"customer": ["public.*"]}
	d.allow
	{f.table | some f in d.obligations.row_filters} == {"public.customers", "public.orders"}
}

test_an_unknown_relation_brings_nothing_to_an_unfiltered_role if {
	i := json.patch(query(["analyst"], ["public.new_view"], []), [{"op": "add", "path": "/facts/sql/tables_unknown", "value": ["public.new_view"]}])
	d := authz.decision with input as i
	d.allow
	not "row_filters" in object.keys(d.obligations)
}
