/**
 * The `petrel` command. Each command lives in cli/commands/ and registers itself here.
 *
 *   petrel dev [app.ts]                   run an app on the embedded runtime (default: air-quality)
 *   petrel send <type> <json|@file>       send one CloudEvent to a running runtime
 *   petrel dlq list|show <id>|redrive     inspect and redrive dead letters
 */
import { Command } from 'commander';
import { registerDev } from './commands/dev.js';
import { registerDlq } from './commands/dlq.js';
import { registerSend } from './commands/send.js';
import { CliError } from './load.js';

const program = new Command()
  .name('petrel')
  .description('Real-time event processing over CloudEvents: write handlers once, run them embedded, on NATS + Knative, or on AWS.')
  .showHelpAfterError();

registerDev(program);
registerSend(program);
registerDlq(program);

program.parseAsync().catch((error: unknown) => {
  console.error(`petrel: ${error instanceof CliError ? error.message : ((error as Error).stack ?? String(error))}`);
  process.exit(error instanceof CliError ? 2 : 1);
});
