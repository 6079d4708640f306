# Runs the shared declarative cases (policies/testdata/cases/cases.json, loaded by
# `opa test policies/` as data.testdata.cases) against the default data
# (policies/data.json, loaded as data.bulwark). The TypeScript suite runs the same
# files through the compiled policy.wasm.
package bulwark.cases_test

import data.bulwark.authz

decision_cases := data.testdata.cases

visible_cases := data.testdata.visible_tools

# A case passes when allow matches, every reasons_include code is among the
# reasons, and (when given) obligations equal the decision's obligations exactly.
case_ok(c, d) if {
	d.allow == c.expect.allow
	every r in object.get(c.expect, "reasons_include", []) {
		r in d.reasons
	}
	obligations_ok(c, d)
}

obligations_ok(c, _) if not "obligations" in object.keys(c.expect)

obligations_ok(c, d) if c.expect.obligations == d.obligations

decision_failures contains {"case": c.name, "got": d} if {
	some c in decision_cases
	d := authz.decision with input as c.input
	not case_ok(c, d)
}

visible_failures contains {"case": c.name, "got": got} if {
	some c in visible_cases
	got := authz.visible_tools with input as c.input
	got != c.expect
}

test_decision_cases_pass if {
	count(decision_cases) >= 25
	count(decision_failures) == 0
} else := false if {
	print("failing decision cases:", decision_failures)
}

test_visible_tools_cases_pass if {
	count(visible_cases) > 0
	count(visible_failures) == 0
} else := false if {
	print("failing visible_tools cases:", visible_failures)
}

test_case_names_unique if {
	names := {c.name | some c in decision_cases}
	count(names) == count(decision_cases)
}

# Every reason code the policy can produce is exercised by at least one shared case.
test_cases_cover_every_reason if {
	seen := {r | some c in decision_cases; some r in c.expect.reasons_include}
	missing := all_reason_codes - seen
	count(missing) == 0
} else := false if {
	print("reason codes without a shared case:", all_reason_codes - {r | some c in decision_cases; some r in c.expect.reasons_include})
}

# Every role in the default data appears in at least one allowed and one denied case.
test_cases_cover_every_role if {
	roles := object.keys(data.bulwark.roles)
	every role in roles {
		some a in decision_cases
		a.expect.allow
		role in a.input.principal.roles
		some b in decision_cases
		not b.expect.allow
		is_array(b.input.principal.roles)
		role in b.input.principal.roles
	}
}

all_reason_codes := {
	"policy.input_malformed",
	"policy.no_role_grants_tool",
	"policy.facts_invalid",
	"path.outside_root",
	"path.kind_not_allowed",
	"path.hardlink",
	"path.blocked_extension",
	"path.blocked_name",
	"sql.multi_statement",
	"sql.kind_not_allowed",
	"sql.table_not_allowed",
	"sql.function_not_allowed",
	"url.upstream_not_allowed",
	"url.method_not_allowed",
	"code.too_large",
}
