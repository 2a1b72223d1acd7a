/**
 * `petrel simulate`: a simulated city of air-quality sensors (handlers/air-quality/simulator.ts)
 * sending readings to a running runtime over HTTP (POST /readings, with a device key or a
 * signature) or MQTT (aq/<location>/<deviceId>), at a set rate, with a progress line on stderr.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { AuthConfigError, DEV_KEY_FILE, deviceKeysFromEnv, signRequest } from '../../adapters/http/auth.js';
import { AirQualitySimulator, httpSender, runSimulation, type ReadingSender, type SimulationProgress } from '../../handlers/air-quality/simulator.js';
import { CliError } from '../load.js';
import { DEFAULT_URL } from '../shared.js';

export const DEFAULT_MQTT_URL = process.env.PETREL_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

function positive(name: string, integer: boolean) {
  return (value: string) => {
    const n = Number(value);
    if (!(n > 0) || (integer && !Number.isInteger(n))) throw new InvalidArgumentError(`${name} is a positive ${integer ? 'integer' : 'number'}`);
    return n;
  };
}

/** The key to send: the first plain key of PETREL_API_KEYS(_FILE), else the dev key `petrel dev` keeps in its data dir. */
export function simulatorKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  let configured: ReturnType<typeof deviceKeysFromEnv>;
  try {
    configured = deviceKeysFromEnv(env);
  } catch (error) {
    throw new CliError((error as AuthConfigError).message);
  }
  if (configured) {
    const plain = configured.keys.find((k) => !k.startsWith('sha256:'));
    if (!plain) throw new CliError(`${configured.source} holds only key hashes; the simulator needs a key itself`);
    return plain;
  }
  const file = join(dataDir, DEV_KEY_FILE);
  if (!existsSync(file)) throw new CliError(`no device key: set PETREL_API_KEYS, or start \`petrel dev\` (it keeps a dev key in ${file}) and pass its --data-dir`);
  return readFileSync(file, 'utf8').trim();
}

async function mqttSender(url: string, prefix: string): Promise<{ send: ReadingSender; close: () => Promise<void> }> {
  let client: mqtt.MqttClient;
  try {
    client = await mqtt.connectAsync(url, { clientId: `petrel-simulate-${process.pid}`, reconnectPeriod: 1000, connectTimeout: 5000 });
  } catch (error) {
    throw new CliError(`cannot reach the MQTT broker at ${url}: ${(error as Error).message}`);
  }
  return {
    send: async (readings) => {
      await Promise.all(readings.map((r) => client.publishAsync(`${prefix}/${r.location}/${r.deviceId}`, JSON.stringify(r), { qos: 1 })));
    },
    close: () => client.endAsync(),
  };
}

function progressLine({ sent, errors, rate, lastError }: SimulationProgress): string {
  return `simulate: ${sent} readings sent, ${rate.toFixed(1)}/s, ${errors} errors${lastError ? ` (last: ${lastError.slice(0, 120)})` : ''}`;
}

interface SimulateOptions {
  url: string;
  transport: string;
  mqttUrl: string;
  mqttPrefix: string;
  devices: number;
  locations: number;
  rate: number;
  faulty: number;
  faultsWithin: number;
  duration?: number;
  signed?: boolean;
  dataDir: string;
  seed?: number;
  truth?: string;
}

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description('send simulated air-quality readings (diurnal cycles, pollution episodes, faulty sensors) to a running runtime')
    .option('--url <url>', 'the runtime, for --transport http (env PETREL_URL)', DEFAULT_URL)
    .option('--transport <transport>', 'http (POST /readings) or mqtt (topic aq/<location>/<deviceId>)', 'http')
    .option('--mqtt-url <url>', 'the MQTT broker, for --transport mqtt (env PETREL_MQTT_URL)', DEFAULT_MQTT_URL)
    .option('--mqtt-prefix <prefix>', 'first topic level, for --transport mqtt: topics are <prefix>/<location>/<deviceId>', 'aq')
    .option('--devices <n>', 'sensors', positive('--devices', true), 40)
    .option('--locations <n>', 'locations the sensors are spread over', positive('--locations', true), 5)
    .option('--rate <n>', 'readings per second, over all sensors', positive('--rate', false), 20)
    .option('--faulty <n>', 'faulty sensors of each kind: stuck, spiking, drifting (0 for none)', (v) => (v === '0' ? 0 : positive('--faulty', true)(v)), 1)
    .option('--faults-within <seconds>', 'each fault begins at a random time within this many seconds', positive('--faults-within', false), 300)
    .option('--duration <seconds>', 'stop after this long (default: until Ctrl-C)', positive('--duration', false))
    .option('--signed', 'sign each request (X-Petrel-Timestamp, X-Petrel-Signature) instead of sending the key')
    .option('-d, --data-dir <dir>', "where `petrel dev` keeps its dev key, used when PETREL_API_KEYS is not set (env PETREL_DATA_DIR)", process.env.PETREL_DATA_DIR ?? '.petrel')
    .option('--seed <n>', 'random seed: the same seed gives the same city', positive('--seed', true))
    .option('--truth <file>', 'write the injected faults (the ground truth) to this JSON file')
    .action(async (options: SimulateOptions) => {
      if (options.transport !== 'http' && options.transport !== 'mqtt') throw new CliError('--transport is "http" or "mqtt"');
      if (options.faulty * 3 > options.devices) throw new CliError(`--faulty ${options.faulty} needs at least ${options.faulty * 3} devices`);
      const now = Date.now();
      const simulator = new AirQualitySimulator({
        devices: options.devices,
        locations: options.locations,
        seed: options.seed ?? now % 2 ** 31,
        faults: { stuck: options.faulty, spike: options.faulty, drift: options.faulty },
        faultWindow: [now, now + options.faultsWithin * 1000],
      });
      const faults = simulator.faults().map((f) => ({ ...f, onset: new Date(f.onset).toISOString() }));
      for (const f of faults) console.error(`simulate: ${f.deviceId} (${f.location}) turns ${f.kind} at ${f.onset}`);
      if (options.truth) writeFileSync(options.truth, `${JSON.stringify(faults, null, 2)}\n`);

      let send: ReadingSender;
      let close = async () => undefined as void;
      if (options.transport === 'mqtt') {
        ({ send, close } = await mqttSender(options.mqttUrl, options.mqttPrefix));
      } else {
        const key = simulatorKey(options.dataDir);
        send = httpSender(options.url, options.signed ? (body) => signRequest(key, body) : () => ({ authorization: `Bearer ${key}` }));
      }

      let refused: string | undefined;
      const run = runSimulation({
        simulator,
        rate: options.rate,
        send,
        batchSize: options.transport === 'mqtt' ? 50 : 500,
        onSettled: (progress) => {
          // Nothing will get through with a wrong key or no runtime: say so instead of counting errors.
          if (progress.sent === 0 && progress.lastError && /answered 401|fetch failed|ECONNREFUSED/.test(progress.lastError)) refused ??= progress.lastError;
        },
      });
      const tty = process.stderr.isTTY;
      let lastLine = 0;
      const report = setInterval(() => {
        if (tty) process.stderr.write(`\r${progressLine(run.progress())}\u001b[K`);
        else if (Date.now() - lastLine >= 10_000) {
          lastLine = Date.now();
          console.error(progressLine(run.progress()));
        }
      }, 1000);
      let check: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
        if (options.duration) setTimeout(resolve, options.duration * 1000).unref();
        check = setInterval(() => refused && resolve(), 200);
      });
      clearInterval(check);
      clearInterval(report);
      await run.stop();
      await close();
      if (tty) process.stderr.write('\n');
      console.error(progressLine(run.progress()));
      if (refused) throw new CliError(options.transport === 'http' && /401/.test(refused) ? `${refused}: check PETREL_API_KEYS or --data-dir` : `no runtime answers at ${options.url}: ${refused}`);
    });
}
