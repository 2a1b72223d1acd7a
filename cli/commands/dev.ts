/** `petrel dev [app]`: the app on the embedded runtime. */
import type { Command } from 'commander';
import pino from 'pino';
import { LocalRuntime } from '../../adapters/local/index.js';
import { CliError, DEFAULT_APP, loadApp } from '../load.js';
import { exitOnSignals, parsePort } from '../shared.js';

export function registerDev(program: Command): void {
  program
    .command('dev')
    .description('run an app on the embedded runtime (SQLite log in-process; no services needed)')
    .argument('[app]', 'path of the app module (default export: defineApp)', DEFAULT_APP)
    .option('-p, --port <port>', 'HTTP port (env PORT)', parsePort, Number(process.env.PORT ?? 3000))
    .option('--host <host>', 'interface to listen on (env HOST)', process.env.HOST ?? '127.0.0.1')
    .option('-d, --data-dir <dir>', 'where the log, tables and buckets live (env PETREL_DATA_DIR)', process.env.PETREL_DATA_DIR ?? '.petrel')
    .option('--sync <mode>', 'SQLite durability: normal survives a crash of this process, full also a power loss', 'normal')
    .action(async (appPath: string, options: { port: number; host: string; dataDir: string; sync: string }) => {
      if (options.sync !== 'normal' && options.sync !== 'full') throw new CliError('--sync is "normal" or "full"');
      const app = await loadApp(appPath);
      const logger = pino({ name: app.name, level: process.env.PETREL_LOG_LEVEL ?? 'info' });
      const runtime = await LocalRuntime.start(app, { dataDir: options.dataDir, synchronous: options.sync, logger });
      try {
        await runtime.listen(options.port, options.host);
      } catch (error) {
        await runtime.stop();
        throw new CliError((error as Error).message);
      }
      const routes = app.functions.flatMap((f) => (f.spec.trigger.kind === 'http' ? [`${f.spec.trigger.method} ${f.spec.trigger.path}`] : []));
      console.error(`petrel: ${app.name} on the embedded runtime at http://${options.host}:${options.port} (data in ${options.dataDir})`);
      console.error(`petrel: routes: POST /events, ${routes.join(', ')}, GET /metrics, GET /healthz`);
      exitOnSignals(() => runtime.stop());
    });
}
