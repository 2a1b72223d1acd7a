/** `petrel dev [app]`: the app on the embedded runtime. */
import type { Command } from 'commander';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { AuthConfigError, DEV_KEY_FILE, DeviceAuth, deviceKeysFromEnv, devKey } from '../../adapters/http/auth.js';
import { LocalRuntime } from '../../adapters/local/index.js';
import { InvocationJournal } from '../../adapters/local/journal.js';
import { MqttBridge, mqttTopicFilters } from '../../adapters/mqtt/index.js';
import { mountConsole } from '../../console/server.js';
import { CliError, DEFAULT_APP, loadApp } from '../load.js';
import { exitOnSignals, parsePort } from '../shared.js';
import { DEFAULT_MQTT_URL } from './simulate.js';

/** What an app module may export as `dev`: routes that need the runtime itself, and work to run beside it. */
interface DevHooks {
  routes?(runtime: LocalRuntime): Array<{ method: 'GET'; path: string; handle(req: IncomingMessage, res: ServerResponse): void }>;
  start?(context: { baseUrl: string; apiKey?: string; log(line: string): void }): Promise<() => Promise<void>>;
}

/** Device keys from PETREL_API_KEYS(_FILE), else a dev key kept in the data dir and printed here once. */
function deviceAuth(dataDir: string): { auth: DeviceAuth; key?: string } {
  try {
    const configured = deviceKeysFromEnv();
    if (configured) return { auth: new DeviceAuth(configured.keys), key: configured.keys.find((k) => !k.startsWith('sha256:')) };
    const file = join(dataDir, DEV_KEY_FILE);
    const { key } = devKey(file);
    console.error(`petrel: device key (PETREL_API_KEYS is not set; the key is kept in ${file}): ${key}`);
    return { auth: new DeviceAuth([key]), key };
  } catch (error) {
    if (error instanceof AuthConfigError) throw new CliError(error.message);
    throw error;
  }
}

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
      const hooks = ((await import(pathToFileURL(resolve(appPath)).href)) as { dev?: DevHooks }).dev ?? {};
      const keys = deviceAuth(options.dataDir);
      const logger = pino({ name: app.name, level: process.env.PETREL_LOG_LEVEL ?? 'info' });
      // The console's journeys come from this journal of the latest invocations.
      const journal = new InvocationJournal();
      const runtime = await LocalRuntime.start(app, { dataDir: options.dataDir, synchronous: options.sync, logger, onInvoked: journal.record });
      const extraRoutes = hooks.routes?.(runtime) ?? [];
      let port: number;
      try {
        const server = await runtime.listen(options.port, options.host, {
          deviceAuth: keys.auth,
          extend: (router) => {
            extraRoutes.forEach((route) => router.get(route.path, (req, res) => route.handle(req, res)));
            mountConsole(router, runtime, journal);
          },
        });
        port = (server.address() as AddressInfo).port;
      } catch (error) {
        await runtime.stop();
        throw new CliError((error as Error).message);
      }
      const routes = app.functions.flatMap((f) => (f.spec.trigger.kind === 'http' ? [`${f.spec.trigger.method} ${f.spec.trigger.path}`] : []));
      console.error(`petrel: ${app.name} on the embedded runtime at http://${options.host}:${port} (data in ${options.dataDir}); console at /`);
      console.error(`petrel: routes: POST /events, ${[...routes, ...extraRoutes.map((r) => `${r.method} ${r.path}`)].join(', ')}, GET /metrics, GET /healthz`);
      let bridge: MqttBridge | undefined;
      if (mqttTopicFilters(app).length > 0) {
        try {
          // One persistent session per data dir: it survives restarts, and two dev servers on one broker do not take each other's.
          const clientId = process.env.PETREL_MQTT_CLIENT_ID ?? `petrel-${app.name}-${createHash('sha256').update(resolve(options.dataDir)).digest('hex').slice(0, 8)}`;
          bridge = MqttBridge.start(runtime, { url: DEFAULT_MQTT_URL, logger, clientId });
        } catch (error) {
          await runtime.stop();
          throw new CliError(`PETREL_MQTT_URL: ${(error as Error).message}`);
        }
        console.error(`petrel: MQTT topics ${mqttTopicFilters(app).join(', ')} from ${DEFAULT_MQTT_URL.replace(/\/\/[^@/]*@/, '//')} (PETREL_MQTT_URL)`);
      }
      const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
      const stopHooks = await hooks.start?.({ baseUrl: `http://${host}:${port}`, apiKey: keys.key, log: (line) => console.error(`petrel: ${line}`) });
      exitOnSignals(async () => {
        await stopHooks?.();
        await bridge?.stop();
        await runtime.stop();
      });
    });
}
