/**
 * The gate's stages in the order every call passes them. The order is written here once: the
 * gate runs it, the dry run (policy eval, tools/list) stops after `decide`, metrics label by it.
 */
export const STAGES = ['authenticate', 'rate_limit', 'validate', 'analyse', 'decide', 'execute', 'record'] as const;

export type StageName = (typeof STAGES)[number];

/** The stages a dry run passes: everything up to and including the policy's decision. */
export const DRY_RUN_STAGES = STAGES.slice(0, STAGES.indexOf('decide') + 1) as readonly StageName[];
