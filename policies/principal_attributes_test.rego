# Principal attributes in row filters (issue 13 item 3): a row filter may take
# its value from a verified attribute of the principal, {"principal":
# "attributes.region"}. The gate fills the value from input.principal.attributes
# (set from the API key, the access token's mapped claims or the configured
# local principal, never from the request) and refuses the call when the
# principal lacks it (policy_error, sql.row_filter_attribute). The policy passes
# the filter on as data: it never needs to read the value itself, so a missing
# attribute cannot silently drop a filter here.
package bulwark.principal_attributes_test

import data.bulwark.authz

regional_role := {"tools": ["describe_table", "list_tables", "query_database"]}

regional_tables := {
	"analyst": ["public.*"],
	"developer": ["public.*", "analytics.*"],
	"admin": ["*"],
	"regional": ["public.customers", "public.orders"],
}

customers_in_region := {"table": "public.customers", "column": "region", "op": "=", "value": {"principal": "attributes.region"}}

orders_of_tenants := {"table": "public.orders", "column": "customer_id", "op": "in", "value": {"principal": "attributes.tenant_ids"}}

regional_filters := {"regional": [customers_in_region, orders_of_tenants]}

query(attributes, tables) := query_as({"id": "erin", "roles": ["regional"], "auth": "api_key", "tier": "standard", "attributes": attributes}, tables)

query_as(principal, tables) := {
	"principal": principal,
	"tool": "query_database",
	"args": {},
	"facts": {"sql": {"statements": 1, "kind": "select", "tables": tables, "functions": []}},
	"context": {"transport": "http", "client_ip": "", "time": "2026-01-01T00:00:00Z", "request_id": "r"},
}

by_regional(i) := d if {
	d := authz.decision with input as i
		with data.bulwark.roles.regional as regional_role
		with data.bulwark.database.tables as regional_tables
		with data.bulwark.database.row_filters as regional_filters
}

test_a_filter_takes_its_value_from_an_attribute if {
	d := by_regional(query({"region": "eu"}, ["public.customers"]))
	d.allow
	d.obligations.row_filters == [customers_in_region]
}

test_a_list_attribute_goes_with_in if {
	d := by_regional(query({"region": "eu", "tenant_ids": ["3", "7"]}, ["public.customers", "public.orders"]))
	d.allow
	d.obligations.row_filters == [orders_of_tenants, customers_in_region] # sorted as objects (by column first)
}

# The obligation does not depend on the attribute's value or presence: the gate
# fills it in, and refuses a principal that lacks it (fail closed).
test_the_filter_stays_when_the_principal_lacks_the_attribute if {
	with_attr := by_regional(query({"region": "eu"}, ["public.customers"]))
	without := by_regional(query({}, ["public.customers"]))
	missing := by_regional(query_as({"id": "erin", "roles": ["regional"], "auth": "api_key"}, ["public.customers"]))
	without.allow
	without.obligations.row_filters == with_attr.obligations.row_filters
	missing.obligations.row_filters == with_attr.obligations.row_filters
}

# Attributes are facts about the caller, not grants: a principal claiming an
# attribute that looks like a role or a table gets no more than its roles give.
test_attributes_grant_nothing if {
	d := by_regional(query({"region": "eu", "role": "admin", "roles": ["admin"]}, ["public.users"]))
	not d.allow
	"sql.table_not_allowed" in d.reasons
}

# The policy sees the attributes (input.principal.attributes): a rule of the
# operator's own can use them, e.g. to allow the tool only to principals that
# carry a region. Shown with a rule of this test package over the same input.
region_of(i) := i.principal.attributes.region

test_the_policy_input_carries_the_attributes if {
	region_of(query({"region": "eu"}, [])) == "eu"
	not region_of(query({}, []))
}
