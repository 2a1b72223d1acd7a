/**
 * The `petrel` command.
 *
 *   petrel dev [app.ts]                   run an app on the embedded runtime (default: air-quality)
 *   petrel send <type> <json|@file>       send one CloudEvent to a running runtime
 *   petrel dlq list|show <id>|redrive     inspect and redrive dead letters
 */
import { Command, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { LocalRuntime } from '../adapters/local/index.js';
import { newEventId } from '../core/event.js';
import { CliError, DEFAULT_APP, loadApp } from './load.js';

const DEFAULT_URL = process.env.PETREL_URL ?? `http://127.0.0.1:${process.env.PORT ?? 3000}`;

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return n;
}

const program = new Command()
  .name('petrel')
  .description('Real-time event processing over CloudEvents: write handlers once, run them embedded, on NATS + Knative, or on AWS.')
  .showHelpAfterError();

program
  .command('dev')
  .description('run an app on the embedded runtime (SQLite log in-process; no services needed)')
  .argument('[app]', 'path of the app module (default export: defineApp)', DEFAULT_APP)
  .option('-p, --port <port>', 'HTTP port (env PORT)', port, Number(process.env.PORT ?? 3000))
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
    const stop = (signal: string) => {
      console.error(`petrel: ${signal}: finishing in-flight work`);
      runtime.stop().then(
        () => process.exit(0),
        (error) => {
          console.error(`petrel: stop failed: ${(error as Error).message}`);
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });

program
  .command('send')
  .description('send one CloudEvent (structured mode) to a running runtime')
  .argument('<type>', 'the event type, e.g. aq.reading.accepted')
  .argument('<data>', 'the event data as JSON, or @file to read it from a file')
  .option('--url <url>', 'the runtime (env PETREL_URL)', DEFAULT_URL)
  .option('--source <source>', 'the event source', 'petrel/cli')
  .option('--subject <subject>', 'the event subject')
  .option('--partition-key <key>', 'the partitionkey extension (ordered delivery per key)')
  .action(async (type: string, raw: string, options: { url: string; source: string; subject?: string; partitionKey?: string }) => {
    const text = raw.startsWith('@') ? readFileOrFail(raw.slice(1)) : raw;
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new CliError(`the data is not valid JSON: ${(error as Error).message}`);
    }
    const event = { specversion: '1.0', id: newEventId(), source: options.source, type, time: new Date().toISOString(), datacontenttype: 'application/json', data, subject: options.subject, partitionkey: options.partitionKey };
    const body = await request(options.url, '/events', { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: JSON.stringify(event) });
    console.log(JSON.stringify(body));
  });

const dlq = program.command('dlq').description('dead letters: events that failed every attempt');
dlq
  .command('list')
  .description('list dead letters, newest first')
  .option('-f, --function <name>', 'only this function')
  .option('--url <url>', 'the runtime (env PETREL_URL)', DEFAULT_URL)
  .action(async (options: { function?: string; url: string }) => {
    const query = options.function ? `?function=${encodeURIComponent(options.function)}` : '';
    const letters = (await request(options.url, `/admin/dead-letters${query}`)) as Array<{ id: string; fn: string; deadAt: string; event: { type: string; id: string }; attempts: Array<{ error: { message: string } }> }>;
    if (letters.length === 0) return void console.log('no dead letters');
    for (const l of letters) {
      const last = l.attempts.at(-1)?.error.message ?? '';
      console.log(`${l.id}  ${l.deadAt}  ${l.fn}  ${l.event.type}  ${l.attempts.length} attempt(s)  ${last.slice(0, 80)}`);
    }
  });
dlq
  .command('show')
  .description('show one dead letter: the event and every attempt')
  .argument('<id>', 'dead letter id (from dlq list)')
  .option('--url <url>', 'the runtime (env PETREL_URL)', DEFAULT_URL)
  .action(async (id: string, options: { url: string }) => {
    console.log(JSON.stringify(await request(options.url, `/admin/dead-letters/${encodeURIComponent(id)}`), null, 2));
  });
dlq
  .command('redrive')
  .description('deliver dead letters to their function again')
  .argument('[id]', 'one dead letter id')
  .option('--all', 'every dead letter')
  .option('-f, --function <name>', 'with --all: only this function')
  .option('--url <url>', 'the runtime (env PETREL_URL)', DEFAULT_URL)
  .action(async (id: string | undefined, options: { all?: boolean; function?: string; url: string }) => {
    if (!id && !options.all) throw new CliError('name a dead letter id, or pass --all');
    if (id && options.all) throw new CliError('give either an id or --all, not both');
    const path = id ? `/admin/dead-letters/${encodeURIComponent(id)}/redrive` : `/admin/dead-letters-redrive${options.function ? `?function=${encodeURIComponent(options.function)}` : ''}`;
    const result = (await request(options.url, path, { method: 'POST' })) as { redriven: number };
    console.log(`redriven: ${result.redriven}`);
  });

function readFileOrFail(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

async function request(base: string, path: string, init: RequestInit = {}): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(new URL(path, base), init);
  } catch {
    throw new CliError(`no petrel runtime answers at ${base}: start one with \`petrel dev\`, or pass --url`);
  }
  const body = (await response.json().catch(() => ({}))) as { error?: string };
  if (!response.ok) throw new CliError(`${response.status}: ${body.error ?? response.statusText}`);
  return body;
}

program.parseAsync().catch((error: unknown) => {
  console.error(`petrel: ${error instanceof CliError ? error.message : (error as Error).stack ?? String(error)}`);
  process.exit(error instanceof CliError ? 2 : 1);
});
