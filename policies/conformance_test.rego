# The test-only conformance profile (conformance.rego): the family is allowed only while the server
# runs `--profile conformance` (data.bulwark.profile, set from the CLI flag alone).
package bulwark.conformance_test

import data.bulwark.authz

fixture_call(roles, tool) := {
	"principal": {"id": "loopback", "roles": roles, "auth": "loopback"},
	"tool": tool,
	"args": {},
	"facts": {"conformance": {"fixture": tool}},
	"context": {"transport": "http", "client_ip": "127.0.0.1", "time": "2026-01-01T00:00:00Z", "request_id": "r"},
}

test_fixture_allowed_under_the_profile if {
	d := authz.decision with input as fixture_call(["developer"], "test_simple_text") with data.bulwark.profile as "conformance"
	d.allow
}

test_method_pseudo_tool_allowed_under_the_profile if {
	d := authz.decision with input as fixture_call(["reader"], "conformance_resources_read") with data.bulwark.profile as "conformance"
	d.allow
}

test_fixture_denied_without_the_profile if {
	d := authz.decision with input as fixture_call(["admin"], "test_simple_text")
	not d.allow
	"policy.conformance_profile_off" in d.reasons
	"policy.no_role_grants_tool" in d.reasons
}

test_other_profile_value_denies if {
	d := authz.decision with input as fixture_call(["developer"], "test_simple_text") with data.bulwark.profile as "Conformance"
	not d.allow
	"policy.conformance_profile_off" in d.reasons
}

# A data file that grants a fixture to a role does not turn the family on.
test_role_grant_without_the_profile_denies if {
	roles := object.union(data.bulwark.roles, {"developer": object.union(data.bulwark.roles.developer, {"tools": ["test_simple_text"]})})
	d := authz.decision with input as fixture_call(["developer"], "test_simple_text") with data.bulwark.roles as roles
	not d.allow
	d.reasons == ["policy.conformance_profile_off"]
}

test_principal_without_roles_denied_under_the_profile if {
	d := authz.decision with input as fixture_call([], "test_simple_text") with data.bulwark.profile as "conformance"
	not d.allow
	"policy.no_role_grants_tool" in d.reasons
}

test_facts_of_another_fixture_denied if {
	c := object.union(fixture_call(["developer"], "test_simple_text"), {"facts": {"conformance": {"fixture": "test_sampling"}}})
	d := authz.decision with input as c with data.bulwark.profile as "conformance"
	not d.allow
	d.reasons == ["policy.facts_invalid"]
}

test_missing_facts_denied if {
	c := json.remove(fixture_call(["developer"], "test_simple_text"), ["facts/conformance"])
	d := authz.decision with input as c with data.bulwark.profile as "conformance"
	not d.allow
	d.reasons == ["policy.facts_invalid"]
}

test_listed_only_under_the_profile if {
	tools := ["read_file", "test_simple_text", "conformance_prompts_list"]
	authz.visible_tools == ["read_file"] with input as {"principal": {"id": "u", "roles": ["reader"]}, "tools": tools}
	authz.visible_tools == ["conformance_prompts_list", "read_file", "test_simple_text"] with input as {"principal": {"id": "u", "roles": ["reader"]}, "tools": tools}
		with data.bulwark.profile as "conformance"
}

# The profile changes nothing for the other families.
test_profile_leaves_other_tools_alone if {
	c := object.union(fixture_call(["reader"], "run_javascript"), {"facts": {"code": {"bytes": 10, "sha256": "x"}}})
	d := authz.decision with input as c with data.bulwark.profile as "conformance"
	not d.allow
	"policy.no_role_grants_tool" in d.reasons
}
