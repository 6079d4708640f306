# Column rules over lineage (issue 13 item 2): the column_rules obligation the
# gate applies over facts.sql.lineage (src/analysis/sql-masks.ts).
package bulwark.sql_columns_test

import data.bulwark.authz

lineage_query(roles, outputs, used) := {
	"principal": {"id": "ann", "roles": roles, "auth": "api_key"},
	"tool": "query_database",
	"args": {},
	"facts": {"sql": {
		"statements": 1,
		"kind": "select",
		"tables": ["public.customers"],
		"functions": [],
		"lineage": {"outputs": outputs, "used": used},
	}},
	"context": {"transport": "http", "client_ip": "", "time": "2026-01-01T00:00:00Z", "request_id": "r"},
}

email_copy := [{"name": "email", "columns": ["public.customers.email"], "copy": true}]

region_copy := [{"name": "region", "columns": ["public.customers.region"], "copy": true}]

mask := {"action": "mask", "predicates": false}

test_redact_columns_is_mask_without_predicates if {
	d := authz.decision with input as lineage_query(["analyst"], email_copy, [])
	d.allow
	d.obligations.column_rules == {"public.customers.email": mask}
	d.obligations.redact_columns == ["email", "phone", "ssn"]
}

test_only_touched_columns_are_ruled if {
	d := authz.decision with input as lineage_query(["analyst"], region_copy, ["public.customers.id"])
	d.allow
	not "column_rules" in object.keys(d.obligations)
}

test_used_columns_are_ruled_too if {
	d := authz.decision with input as lineage_query(["analyst"], region_copy, ["public.customers.email"])
	d.obligations.column_rules == {"public.customers.email": mask}
}

test_most_specific_key_wins if {
	rules := {"email": {"action": "refuse"}, "customers.email": {"action": "allow", "predicates": true}}
	d := authz.decision with input as lineage_query(["analyst"], email_copy, [])
		with data.bulwark.database.column_rules.analyst as rules
	d.obligations.column_rules == {"public.customers.email": {"action": "allow", "predicates": true}}
}

test_full_key_beats_table_key if {
	rules := {"customers.email": {"action": "allow"}, "public.customers.email": {"action": "refuse", "predicates": false}}
	d := authz.decision with input as lineage_query(["analyst"], email_copy, [])
		with data.bulwark.database.column_rules.analyst as rules
	d.obligations.column_rules == {"public.customers.email": {"action": "refuse", "predicates": false}}
}

test_explicit_rule_overrides_redact_columns if {
	d := authz.decision with input as lineage_query(["analyst"], email_copy, ["public.customers.email"])
		with data.bulwark.database.column_rules.analyst as {"email": {"action": "mask", "predicates": true}}
	d.obligations.column_rules == {"public.customers.email": {"action": "mask", "predicates": true}}
}

test_a_role_without_a_rule_is_the_most_generous if {
	# developer redacts only ssn: with analyst + developer, email is not ruled.
	d := authz.decision with input as lineage_query(["analyst", "developer"], email_copy, [])
	not "column_rules" in object.keys(d.obligations)
}

test_roles_merge_to_the_most_generous_action if {
	rules := {
		"analyst": {"public.customers.email": {"action": "refuse"}},
		"developer": {"email": {"action": "mask", "predicates": true}},
	}
	d := authz.decision with input as lineage_query(["analyst", "developer"], email_copy, [])
		with data.bulwark.database.column_rules as rules
	d.obligations.column_rules == {"public.customers.email": {"action": "mask", "predicates": true}}
}

test_malformed_rule_is_passed_on_as_invalid if {
	d := authz.decision with input as lineage_query(["analyst"], email_copy, [])
		with data.bulwark.database.column_rules.analyst as {"email": {"action": "hide"}}
	d.obligations.column_rules == {"public.customers.email": {"action": "invalid", "predicates": false}}
}

test_no_lineage_no_rules if {
	i := json.remove(lineage_query(["analyst"], email_copy, []), ["facts/sql/lineage"])
	d := authz.decision with input as i
	d.allow
	not "column_rules" in object.keys(d.obligations)
}

test_not_for_describe_table if {
	i := json.patch(lineage_query(["analyst"], email_copy, []), [{"op": "replace", "path": "/tool", "value": "describe_table"}])
	d := authz.decision with input as i
	not "column_rules" in object.keys(d.obligations)
}
