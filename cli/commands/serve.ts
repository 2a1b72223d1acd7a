/** `petrel serve <function> [app]`: one function as a Knative Service (CloudEvents over HTTP). */
import type { Command } from 'commander';
import pino from 'pino';
import { redactUrl } from '../../core/redact.js';
import { CliError, DEFAULT_APP, loadApp } from '../load.js';
import { exitOnSignals, parsePort } from '../shared.js';

function sinkUrl(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError(`K_SINK must be an http(s) URL, got ${JSON.stringify(redactUrl(value))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`K_SINK must be an http(s) URL, got ${redactUrl(value)}`);
  return value;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run one function as a Knative Service: CloudEvents on POST / (binary, structured, batch), the emitted event as the reply or POSTed to K_SINK, /healthz, /readyz, /metrics')
    .argument('<function>', 'the function to serve (one with an event trigger)')
    .argument('[app]', 'path of the app module (default export: defineApp)', DEFAULT_APP)
    .option('-p, --port <port>', 'HTTP port (env PORT, which Knative sets)', parsePort, Number(process.env.PORT ?? 8080))
    .option('--host <host>', 'interface to listen on (env HOST)', process.env.HOST ?? '0.0.0.0')
    .option('--sink <url>', 'where emitted events go that do not travel as the reply (env K_SINK)', process.env.K_SINK)
    .option('--nats <url>', 'NATS server URL(s), comma-separated, for completion records and buckets (env PETREL_NATS_URL; TLS CA: PETREL_NATS_CA_FILE; nkey: PETREL_NATS_SEED_FILE)', process.env.PETREL_NATS_URL)
    .option('--pg <url>', "PostgreSQL URL for the function's tables (env PETREL_PG_URL)", process.env.PETREL_PG_URL)
    .action(async (fnName: string, appPath: string, options: { port: number; host: string; sink?: string; nats?: string; pg?: string }) => {
      const app = await loadApp(appPath);
      const fn = app.function(fnName);
      const servable = app.functions.filter((f) => f.pattern).map((f) => f.name);
      if (!fn) {
        const all = app.functions.map((f) => (f.pattern ? f.name : `${f.name} (http)`));
        throw new CliError(`no function "${fnName}" in app "${app.name}"; its functions: ${all.join(', ')}`);
      }
      if (!fn.pattern) throw new CliError(`function "${fnName}" is http-triggered: the ingress serves it (petrel run). petrel serve runs: ${servable.join(', ') || 'none in this app'}`);
      const sink = sinkUrl(options.sink);
      const logger = pino({ name: `${app.name}/${fn.name}`, level: process.env.PETREL_LOG_LEVEL ?? 'info' });
      const nats = options.nats ? { servers: options.nats.split(',').map((s) => s.trim()), caFile: process.env.PETREL_NATS_CA_FILE, seedFile: process.env.PETREL_NATS_SEED_FILE } : undefined;
      // Loaded here, not at the top: every other command starts without NATS, PostgreSQL and Knative.
      const { KnativeFunction, openStores } = await import('../../adapters/knative/index.js');
      let stores;
      try {
        stores = await openStores(app, fn, { nats, pgUrl: options.pg, logger });
      } catch (error) {
        throw new CliError((error as Error).message.replace(/\s+/g, ' '));
      }
      const server = new KnativeFunction(app, fn, { stores, logger, sink });
      try {
        await server.listen(options.port, options.host);
      } catch (error) {
        await server.stop();
        throw new CliError((error as Error).message);
      }
      const records = stores.completions ? `completion records in ${stores.completions.kind}` : 'no completion records (no effects to protect)';
      console.error(`petrel: function ${fn.name} of ${app.name} at http://${options.host}:${options.port} (${records}; K_SINK ${sink ? redactUrl(sink) : 'not set'})`);
      exitOnSignals(() => server.stop());
    });
}
