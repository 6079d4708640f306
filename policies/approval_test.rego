# The approval obligation (approval.rego): which call_api calls a human must
# approve, the most-generous rule across granting roles, and fail-closed shapes.
package bulwark.approval_test

import data.bulwark.authz

api_call(roles, method) := {
	"principal": {"id": "u-1", "roles": roles, "auth": "api_key"},
	"tool": "call_api",
	"args": {},
	"facts": {"url": {"upstream": "github", "method": method, "path": "/repos/x/y", "addresses": ["192.0.2.1"]}},
	"context": {"transport": "http", "client_ip": "", "time": "2026-01-01T00:00:00Z", "request_id": "r"},
}

approval_of(i) := a if {
	d := authz.decision with input as i
	a := d.obligations.approval
}

test_default_developer_post_and_patch_need_approval if {
	a := approval_of(api_call(["developer"], "POST"))
	a.approvers == ["admin"]
	a.ttl_ms == 300000
	a.reason == "POST /repos/x/y on github is not idempotent and changes state upstream: a human must approve it."
	approval_of(api_call(["developer"], "patch")).reason == "PATCH /repos/x/y on github is not idempotent and changes state upstream: a human must approve it."
}

test_safe_methods_need_no_approval if {
	d := authz.decision with input as api_call(["developer"], "GET")
	d.allow
	not d.obligations.approval
	h := authz.decision with input as api_call(["developer"], "HEAD")
	not h.obligations.approval
}

test_denied_call_carries_no_approval if {
	d := authz.decision with input as api_call(["developer"], "DELETE")
	not d.allow
	d.obligations == {}
}

test_admin_never_asked if {
	d := authz.decision with input as api_call(["admin"], "POST")
	d.allow
	not d.obligations.approval
}

# A granting role that permits the method without approval is the most generous.
test_role_without_approval_wins if {
	d := authz.decision with input as api_call(["developer", "ops"], "POST")
		with data.bulwark.roles.ops as {"tools": ["call_api"]}
		with data.bulwark.api.methods.ops as ["POST"]
		with data.bulwark.api.upstreams.ops as ["github"]
	d.allow
	not d.obligations.approval
}

# A role that does not permit the method has no say either way.
test_role_without_the_method_does_not_lift_approval if {
	a := approval_of(api_call(["developer", "viewer"], "POST")) with data.bulwark.roles.viewer as {"tools": ["call_api"]}
		with data.bulwark.api.methods.viewer as ["GET"]
		with data.bulwark.api.upstreams.viewer as ["github"]
	a.approvers == ["admin"]
}

# A role that does not grant call_api contributes nothing (not a granting role).
test_non_granting_role_ignored if {
	a := approval_of(api_call(["developer", "reader"], "POST")) with data.bulwark.api.methods.reader as ["POST"]
	a.ttl_ms == 300000
}

test_union_of_approvers_and_largest_ttl if {
	a := approval_of(api_call(["developer", "ops"], "POST")) with data.bulwark.roles.ops as {"tools": ["call_api"]}
		with data.bulwark.api.methods.ops as ["POST"]
		with data.bulwark.api.upstreams.ops as ["github"]
		with data.bulwark.api.approval.ops as {"methods": ["POST"], "approvers": ["sre", "admin"], "ttl_ms": 600000}
	a.approvers == ["admin", "sre"]
	a.ttl_ms == 600000
}

test_other_tools_never_asked if {
	i := {
		"principal": {"id": "u-1", "roles": ["developer"], "auth": "api_key"},
		"tool": "api_stats",
		"args": {},
		"facts": {},
		"context": {"transport": "http", "client_ip": "", "time": "2026-01-01T00:00:00Z", "request_id": "r"},
	}
	d := authz.decision with input as i
	d.allow
	not d.obligations.approval
}

test_no_approval_data_no_approval if {
	d := authz.decision with input as api_call(["developer"], "POST") with data.bulwark.api.approval as {}
	d.allow
	not d.obligations.approval
}

# Malformed approval data yields an obligation the gate refuses (policy_error): never a silent run.
test_malformed_role_entry_fails_closed if {
	a := approval_of(api_call(["developer"], "POST")) with data.bulwark.api.approval.developer as ["POST"]
	a.invalid
	b := approval_of(api_call(["developer"], "POST")) with data.bulwark.api.approval.developer as {"methods": "POST"}
	b.invalid
}

test_missing_ttl_is_not_a_number if {
	a := approval_of(api_call(["developer"], "POST")) with data.bulwark.api.approval.developer as {"methods": ["POST"], "approvers": []}
	a.ttl_ms == null
	a.approvers == []
}

test_default_approval_data_is_normalised if {
	every _, a in data.bulwark.api.approval {
		every m in a.methods {
			m == upper(m)
		}
	}
}
