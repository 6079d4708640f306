# The conformance profile (test-only).
# The official MCP conformance suite's fixtures (tools test_*, and the gated pseudo-tools
# conformance_* that answer resources/*, prompts/*, completion/complete, logging/setLevel) are
# served only by `bulwark serve --profile conformance`. The server sets
# data.bulwark.profile from that CLI flag alone (a data file or bundle that sets it is
# overridden) and registers the fixtures only then; this file allows them only then. Every
# role of the principal grants them under the profile; nothing grants them anywhere else.
package bulwark.authz

conformance_on if data.bulwark.profile == "conformance"

# The family by name: the suite names its fixtures test_*, Bulwark its pseudo-tools conformance_*.
conformance_tool(t) if startswith(t, "test_")

conformance_tool(t) if startswith(t, "conformance_")

# Under the profile, any role the principal holds grants the family.
granting_roles contains r if {
	conformance_on
	tool_ok
	conformance_tool(input.tool)
	some r in principal_roles
}

# tools/list: the same grant.
tool_granted(t, _) if {
	conformance_on
	conformance_tool(t)
}

# Always defined (a denials group must be): the profile off, or facts that are not the family's own.
profile_denials := {"policy.conformance_profile_off"} if {
	tool_ok
	conformance_tool(input.tool)
	not conformance_on
} else := {"policy.facts_invalid"} if {
	tool_ok
	conformance_tool(input.tool)
	not conformance_facts_ok
} else := set()

conformance_facts_ok if {
	is_object(input.facts.conformance)
	input.facts.conformance.fixture == input.tool
}
