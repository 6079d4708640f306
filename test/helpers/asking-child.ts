/**
 * `node asking-child.js CONFIG`: Bulwark over real stdio with the asking tool (asking-tool.ts) in
 * its registry, for the stdio elicitation tests. stdout is the protocol; logs go to stderr.
 */
import { loadConfig } from '../../src/config/loader.js';
import { createApp } from '../../src/app.js';
import { createLogger } from '../../src/observability/logger.js';
import { serveStdio } from '../../src/transport/stdio.js';
import { withAskingTool } from './asking-tool.js';
import { unwrapSpawnHook } from './child-env.js';

unwrapSpawnHook();
const file = process.argv[2];
if (!file) throw new Error('usage: asking-child CONFIG');
const app = await createApp(loadConfig({ file }), createLogger('warn'));
const { closed } = await serveStdio(withAskingTool(app));
await closed;
await app.close();
process.exit(0);
