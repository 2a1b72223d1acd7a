/**
 * The `petrel` command. Each command lives in cli/commands/ and registers itself here.
 *
 *   petrel dev [app.ts]                   run an app on the embedded runtime (default: air-quality)
 *   petrel send <type> <json|@file>       send one CloudEvent to a running runtime
 *   petrel dlq list|show <id>|redrive     inspect and redrive dead letters
 *   petrel simulate [--rate n]            simulated air-quality sensors sending to a running runtime
 *   petrel build --target aws [app.ts]    one Lambda zip per function, with sizes and cold import times
 *   petrel serve <function> [app.ts]      one function as a Knative Service (PORT, K_SINK)
 */
import { Command } from 'commander';
import { registerBuild } from './commands/build.js';
import { registerDev } from './commands/dev.js';
import { registerDlq } from './commands/dlq.js';
import { registerRun } from './commands/run.js';
import { registerSend } from './commands/send.js';
import { registerServe } from './commands/serve.js';
import { registerSimulate } from './commands/simulate.js';
import { CliError } from './load.js';

const program = new Command()
  .name('petrel')
  .description('Real-time event processing over CloudEvents: write handlers once, run them embedded, on NATS + Knative, or on AWS.')
  .showHelpAfterError();

registerDev(program);
registerBuild(program);
registerSend(program);
registerDlq(program);
registerRun(program);
registerSimulate(program);
registerServe(program);

program.parseAsync().catch((error: unknown) => {
  console.error(`petrel: ${error instanceof CliError ? error.message : ((error as Error).stack ?? String(error))}`);
  process.exit(error instanceof CliError ? 2 : 1);
});
