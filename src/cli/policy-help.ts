export const POLICY_HELP = `Usage:
  bulwark policy build                 opa build the Rego in policies/ to policies/policy.wasm
  bulwark policy build --bundle OUT.tar.gz [--signing-key KEY.pem] [--signing-alg RS256] [--revision R] [--scope S]
                       [--policies DIR] [--data FILE]
                                       an OPA bundle (policy.wasm, data.json, .manifest) signed by opa for
                                       policy.bundle / policy.bundle_url, then checked with Bulwark's verifier
  bulwark policy test                  opa test policies/ (with coverage)
  bulwark policy eval --tool NAME [--args JSON] [--config FILE] [--root DIR]... [--roles a,b] [--principal ID]
                     [--attr NAME=VALUE]... [--json]
                                       what would the gate decide for this call? (nothing is executed or recorded;
                                       --attr gives the principal attributes a key or token would carry)
`;
