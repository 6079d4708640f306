# Path rules of call_api: the canonical-shape check, per-role path allow-lists
# (api.paths) and the global deny list (api.denied_paths). See authz.rego
# "Paths" and policies/README.md.
package bulwark.api_paths_test

import data.bulwark.authz

api_call(roles, upstream, method, path) := {
	"principal": {"id": "u-1", "roles": roles, "auth": "api_key"},
	"tool": "call_api",
	"args": {},
	"facts": {"url": {"upstream": upstream, "method": method, "path": path, "addresses": ["192.0.2.1"]}},
	"context": {"transport": "stdio", "client_ip": "", "time": "2026-01-01T00:00:00Z", "request_id": "r"},
}

allowed(i) if {
	d := authz.decision with input as i
	d.allow == true
	d.reasons == []
}

reasons(i) := d.reasons if {
	d := authz.decision with input as i
	d.allow == false
}

restricted := {"developer": {"github": ["/repos", "/search/"], "*": ["/meta"]}}

test_path_is_a_required_fact if {
	reasons(api_call(["developer"], "github", "GET", 1)) == ["policy.facts_invalid"]
	i := {"principal": {"id": "u", "roles": ["developer"]}, "tool": "call_api", "facts": {"url": {"upstream": "github", "method": "GET"}}}
	reasons(i) == ["policy.facts_invalid"]
}

test_non_canonical_paths_refused if {
	every p in ["repos/x", "/repos/../admin", "/repos/./x", "/repos//x", "//evil.example/x", "/..", "/a\\b", "/x/."] {
		reasons(api_call(["admin"], "github", "GET", p)) == ["url.path_not_allowed"]
	}
}

test_unrestricted_role_any_canonical_path if {
	allowed(api_call(["developer"], "github", "GET", "/"))
	allowed(api_call(["developer"], "github", "GET", "/repos/x/y"))
	allowed(api_call(["developer"], "httpbin", "GET", "/anything/deep/path"))
}

test_role_prefixes_match_whole_segments if {
	allowed(api_call(["developer"], "github", "GET", "/repos")) with data.bulwark.api.paths as restricted
	allowed(api_call(["developer"], "github", "GET", "/repos/x/y")) with data.bulwark.api.paths as restricted
	allowed(api_call(["developer"], "github", "GET", "/search/code")) with data.bulwark.api.paths as restricted
	allowed(api_call(["developer"], "github", "GET", "/meta")) with data.bulwark.api.paths as restricted
	reasons(api_call(["developer"], "github", "GET", "/reposx")) == ["url.path_not_allowed"] with data.bulwark.api.paths as restricted
	reasons(api_call(["developer"], "github", "GET", "/search")) == ["url.path_not_allowed"] with data.bulwark.api.paths as restricted
	reasons(api_call(["developer"], "github", "GET", "/users/x")) == ["url.path_not_allowed"] with data.bulwark.api.paths as restricted
}

test_wildcard_upstream_prefixes if {
	allowed(api_call(["developer"], "httpbin", "GET", "/meta/x")) with data.bulwark.api.paths as restricted
	reasons(api_call(["developer"], "httpbin", "GET", "/get")) == ["url.path_not_allowed"] with data.bulwark.api.paths as restricted
}

test_prefix_slash_covers_everything if {
	allowed(api_call(["developer"], "github", "GET", "/anything")) with data.bulwark.api.paths as {"developer": {"github": ["/"]}}
}

test_paths_union_over_granting_roles if {
	# admin grants the upstream without a path list: the union allows the path
	allowed(api_call(["developer", "admin"], "github", "GET", "/users/x")) with data.bulwark.api.paths as restricted

	# reader does not grant call_api: it cannot widen (or narrow) anything
	reasons(api_call(["developer", "reader"], "github", "GET", "/users/x")) == ["url.path_not_allowed"] with data.bulwark.api.paths as restricted
}

test_role_not_granting_the_upstream_cannot_widen_paths if {
	# developer grants call_api but not internal-billing, so its lack of a path list does not count
	p := {"admin": {"internal-billing": ["/invoices/"]}}
	allowed(api_call(["developer", "admin"], "internal-billing", "GET", "/invoices/7")) with data.bulwark.api.paths as p
	reasons(api_call(["developer", "admin"], "internal-billing", "GET", "/payroll")) == ["url.path_not_allowed"] with data.bulwark.api.paths as p
}

test_ungranted_upstream_reports_only_the_upstream if {
	reasons(api_call(["developer"], "internal-billing", "GET", "/x")) == ["url.upstream_not_allowed"] with data.bulwark.api.paths as restricted
}

test_denied_paths_win_over_every_grant if {
	reasons(api_call(["developer"], "github", "GET", "/user/keys")) == ["url.path_denied"]
	reasons(api_call(["admin"], "github", "GET", "/user/keys/1")) == ["url.path_denied"]
	reasons(api_call(["admin"], "github", "DELETE", "/admin/users")) == ["url.path_denied"]
	reasons(api_call(["developer"], "httpbin", "GET", "/redirect-to")) == ["url.path_denied"]

	# case-insensitive, by whole segments
	reasons(api_call(["admin"], "github", "GET", "/User/Keys")) == ["url.path_denied"]
	allowed(api_call(["admin"], "github", "GET", "/user/keysx"))
	allowed(api_call(["admin"], "github", "GET", "/user/repos"))
}

test_denied_paths_wildcard_upstream if {
	d := {"*": ["/internal/"]}
	reasons(api_call(["admin"], "anything", "GET", "/internal/x")) == ["url.path_denied"] with data.bulwark.api.denied_paths as d
	allowed(api_call(["admin"], "anything", "GET", "/internals")) with data.bulwark.api.denied_paths as d
}

test_path_rules_without_data if {
	allowed(api_call(["admin"], "github", "GET", "/user/keys")) with data.bulwark.api.denied_paths as null
	allowed(api_call(["developer"], "github", "GET", "/x")) with data.bulwark.api.paths as null
}

test_denied_paths_data_normalised if {
	every _, prefixes in data.bulwark.api.denied_paths {
		every p in prefixes {
			p == lower(p)
			startswith(p, "/")
		}
	}
}

test_all_reasons_together if {
	i := api_call(["developer"], "github", "DELETE", "/User/Keys")
	reasons(i) == ["url.method_not_allowed", "url.path_denied", "url.path_not_allowed"] with data.bulwark.api.paths as restricted
}
