/** `petrel run --nats <url> [app]`: the app's functions as workers on NATS JetStream, and the ingress. */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import pino from 'pino';
import type { HttpDispatcher } from '../../adapters/knative/index.js';
import type { NatsRuntime } from '../../adapters/nats/index.js';
import { CliError, DEFAULT_APP, loadApp } from '../load.js';
import { exitOnSignals, parsePort } from '../shared.js';

function parseReplicas(value: string): number {
  const n = Number(value);
  if (![1, 3, 5].includes(n)) throw new InvalidArgumentError('replicas is 1, 3 or 5');
  return n;
}

/** Collects repeated `--function-url name=url` options. */
function functionUrl(value: string, urls: Record<string, string>): Record<string, string> {
  const at = value.indexOf('=');
  if (at < 1) throw new InvalidArgumentError('expected <function>=<url>, e.g. assess=http://assess.default.svc');
  return { ...urls, [value.slice(0, at)]: value.slice(at + 1) };
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run an app on NATS JetStream: its functions as workers (durable consumers shared by every process running it) and the HTTP ingress')
    .argument('[app]', 'path of the app module (default export: defineApp)', DEFAULT_APP)
    .option('--nats <url>', 'NATS server URL(s), comma-separated (env PETREL_NATS_URL)', process.env.PETREL_NATS_URL)
    .option('--pg <url>', 'PostgreSQL URL for the app\'s tables (env PETREL_PG_URL)', process.env.PETREL_PG_URL)
    .option('-p, --port <port>', 'HTTP port (env PORT)', parsePort, Number(process.env.PORT ?? 3000))
    .option('--host <host>', 'interface to listen on (env HOST)', process.env.HOST ?? '127.0.0.1')
    .option('--replicas <n>', 'replicas of the app\'s streams, KV buckets and object stores (3 in a 3-node cluster)', parseReplicas, 1)
    .option('--dispatch <mode>', '"workers": run the functions in this process; "http": deliver their events over HTTP to function endpoints (`petrel serve`, Knative Services) with retries, backoff and dead letters', 'workers')
    .option('--function-url <fn=url>', 'with --dispatch http: where a function is served; once per function with an event trigger', functionUrl, {})
    .action(async (appPath: string, options: { nats?: string; pg?: string; port: number; host: string; replicas: number; dispatch: string; functionUrl: Record<string, string> }) => {
      if (options.dispatch !== 'workers' && options.dispatch !== 'http') throw new CliError('--dispatch is "workers" or "http"');
      if (!options.nats) throw new CliError('give the NATS server: --nats nats://host:4222 (or set PETREL_NATS_URL)');
      const app = await loadApp(appPath);
      const logger = pino({ name: app.name, level: process.env.PETREL_LOG_LEVEL ?? 'info' });
      const servers = options.nats.split(',').map((s) => s.trim());
      const dispatching = options.dispatch === 'http';
      // Loaded here, not at the top: every other command starts without NATS, PostgreSQL and Knative.
      const [{ NatsRuntime }, { HttpDispatcher, ingressApp }] = await Promise.all([import('../../adapters/nats/index.js'), import('../../adapters/knative/index.js')]);
      let runtime: NatsRuntime;
      let dispatcher: HttpDispatcher | undefined;
      try {
        // Dispatching over HTTP, this process serves only the ingress side; functions run elsewhere.
        runtime = await NatsRuntime.start(dispatching ? ingressApp(app) : app, { servers, pgUrl: options.pg, replicas: options.replicas, logger });
      } catch (error) {
        throw new CliError((error as Error).message.replace(/\s+/g, ' '));
      }
      if (dispatching) {
        try {
          dispatcher = await HttpDispatcher.start(app, { nats: { servers }, urls: options.functionUrl, logger });
        } catch (error) {
          await runtime.stop();
          throw new CliError((error as Error).message.replace(/\s+/g, ' '));
        }
      }
      try {
        await runtime.listen(options.port, options.host);
      } catch (error) {
        await runtime.stop();
        throw new CliError((error as Error).message);
      }
      const mode = dispatching ? `dispatching to ${Object.keys(options.functionUrl).length} function endpoint(s) over HTTP` : 'functions as workers';
      console.error(`petrel: ${app.name} on NATS JetStream (${runtime.health().nats}), ${mode}, ingress at http://${options.host}:${options.port}`);
      exitOnSignals(async () => {
        await dispatcher?.stop();
        await runtime.stop();
      });
    });
}
