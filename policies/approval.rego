# Human approval obligations: which allowed calls a human must approve before they
# run (README.md "Approval"). The gate asks the client (form elicitation on
# 2025-11-25, an input_required result on 2026-07-28), binds the answer to the
# principal, the tool and the arguments hash, and denies approval_required when the
# client cannot be asked.
package bulwark.authz

# call_api: data.bulwark.api.approval[role] = {"methods": [upper-case methods],
# "approvers": [role names shown to the human], "ttl_ms": n}. A call needs approval
# when every granting role that permits its method lists the method there: a role
# that may make the call without approval is the most generous and wins (as for
# the limits). Approvers are the union over those roles; ttl_ms the largest.
#
# The default data asks it of the developer role for POST and PATCH, the methods
# RFC 9110 (9.2.2) does not define as idempotent: repeating one may act twice, and
# Bulwark never retries them. PUT and DELETE are idempotent but not safe (9.2.1);
# the default developer role is not granted them at all, which is stricter; an
# operator who grants them can list them here.
#
# Fail closed: an approval entry of the wrong shape yields an obligation the gate
# cannot parse, so the call is denied policy_error instead of running unapproved.
approval_obligation(roles) := {"approval": approval_value(needing, upper(uf.method))} if {
	input.tool == "call_api"
	needing := approval_roles(roles, upper(uf.method))
	count(needing) > 0
} else := {}

# The granting roles that permit the method, when every one of them needs approval
# for it; the empty set otherwise.
approval_roles(roles, method) := permitting if {
	permitting := {r | some r in roles; method in data.bulwark.api.methods[r]}
	every r in permitting {
		needs_approval(r, method)
	}
} else := set()

needs_approval(r, method) if method in approval_of(r).methods

needs_approval(r, _) if approval_of(r).invalid == true

# A role's approval settings: {} when it has none, "invalid" when they are not an
# object with a list of method names.
approval_of(r) := a if {
	a := data.bulwark.api.approval[r]
	is_object(a)
	string_array(a.methods)
} else := {} if {
	not approval_entry(r)
} else := {"methods": [], "invalid": true}

# (a reference to the entry itself: a `with` override in tests replaces it there,
# and any value, false included, counts as an entry)
approval_entry(r) if _ = data.bulwark.api.approval[r]

approval_value(needing, method) := {"invalid": "api.approval of a granting role is malformed"} if {
	some r in needing
	approval_of(r).invalid == true
} else := {
	"approvers": sort({a | some r in needing; some a in object.get(approval_of(r), "approvers", [])}),
	"reason": concat("", [method, " ", uf.path, " on ", uf.upstream, " is not idempotent and changes state upstream: a human must approve it."]),
	"ttl_ms": max({t | some r in needing; t := object.get(approval_of(r), "ttl_ms", null)}),
}
