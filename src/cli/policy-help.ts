export const POLICY_HELP = `Usage:
  bulwark policy build                 opa build the Rego in policies/ to policies/policy.wasm
  bulwark policy test                  opa test policies/ (with coverage)
  bulwark policy eval --tool NAME [--args JSON] [--config FILE] [--root DIR]... [--roles a,b] [--principal ID] [--json]
                                       what would the gate decide for this call? (nothing is executed or recorded)
`;
