# Column rules over lineage (query_database).
# Masks as policy over the query's column lineage (issue 13 item 2). The analyser
# sends facts.sql.lineage: per output the base columns ("schema.table.column")
# it derives from and whether it is a bare copy, and the base columns used in
# predicates (WHERE, JOIN, GROUP BY, ORDER BY, HAVING, windows, DISTINCT).
# For every base column the query touches, this emits the rule that applies as
# the column_rules obligation: {"action": "mask" | "allow" | "refuse",
# "predicates": bool}. The gate (src/analysis/sql-masks.ts) masks bare copies
# of a masked column, refuses derived values of it, refuses any output of a
# refused column, and refuses predicate use unless "predicates" is true.
package bulwark.authz

# Data: database.column_rules[role] = {"<key>": {"action": ..., "predicates": bool}}
# where <key> is "schema.table.column", "table.column" (any schema) or "column"
# (any table); the most specific key wins. database.redact_columns[role] (column
# names) is the simple form: {"action": "mask", "predicates": false} for a name
# the role has no rule for. With several granting roles a column is ruled only
# when every role rules it; then the most generous action (allow > mask > refuse)
# and predicates if any role allows them (as for redact_columns).
column_rule_obligation(roles) := {"column_rules": rules} if {
	input.tool == "query_database"
	rules := column_rules_for(roles, object.get(db, "column_rules", {}), object.get(db, "redact_columns", {}))
	count(rules) > 0
} else := {}

# The base columns the query reads, as the lineage facts name them.
lineage_columns := {c |
	some o in sf.lineage.outputs
	some c in o.columns
	is_string(c)
} | {c |
	some c in sf.lineage.used
	is_string(c)
}

column_rules_for(roles, by_role, redact) := {c: merged |
	some c in lineage_columns
	rules := [rule | some r in roles; rule := role_column_rule(object.get(by_role, r, {}), object.get(redact, r, []), lower(c))]
	count(rules) > 0
	count(rules) == count(roles)
	merged := merge_column_rules(rules)
}

role_column_rule(rules, redact, c) := rules[c] if {
	is_object(rules)
	_ = rules[c]
} else := rules[k] if {
	is_object(rules)
	parts := split(c, ".")
	k := concat(".", [parts[1], parts[2]])
	_ = rules[k]
} else := rules[k] if {
	is_object(rules)
	k := split(c, ".")[2]
	_ = rules[k]
} else := {"action": "mask", "predicates": false} if {
	is_array(redact)
	split(c, ".")[2] in redact
}

# A rule the gate cannot read is passed on as "invalid", so the call is refused
# (policy_error) instead of the column going unprotected.
merge_column_rules(rules) := {"action": "invalid", "predicates": false} if {
	some x in rules
	not valid_column_rule(x)
} else := {
	"action": column_action_name(max({column_action_rank(x.action) | some x in rules})),
	"predicates": any_column_predicates(rules),
}

valid_column_rule(x) if {
	is_object(x)
	column_action_rank(x.action)
	is_boolean(object.get(x, "predicates", false))
}

column_action_rank("refuse") := 0

column_action_rank("mask") := 1

column_action_rank("allow") := 2

column_action_name(0) := "refuse"

column_action_name(1) := "mask"

column_action_name(2) := "allow"

any_column_predicates(rules) if {
	any_column_predicates_true(rules)
} else := false

any_column_predicates_true(rules) if {
	some x in rules
	x.predicates == true
}
