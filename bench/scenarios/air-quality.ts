/**
 * Scenario 4: ingest-to-alert latency of the air-quality app (handlers/air-quality) on the
 * embedded runtime, against the paper's 500 ms, run as a user runs it: `petrel dev` in a process
 * of its own (as scenarios 5 and 6; in the bench's process, after the scenarios before it, the
 * runtime's thread was 15 points busier). Devices POST one reading per request to /readings
 * (device key in `Authorization: Bearer`, from PETREL_API_KEYS) at 2,000 readings/s, crafted
 * (bench/readings.ts) so that exactly two alerts per device are raised. Each alert is timed from
 * its reading's ingest (the `ingesttime` the ingress stamps when the request arrives) to the moment
 * it reaches this process over the app's Server-Sent Events stream (`/alerts/stream`, what the
 * console listens to). Then: readings per second sustained end to end, with the clients sending as
 * fast as they are answered until all is handled. And the same latency at 1,000 readings/s.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { freePort, HTTP_CONCURRENCY, lagOf, spawnPetrel, tempDir, threadCpuMs, waitHealthy, withLoad, type HttpLoad } from '../harness.js';
import type { LoadTarget } from '../http-worker.js';
import { plannedAlerts, totalReadings, type ReadingPlan } from '../readings.js';
import { latencyFigures, log, sleep } from '../stats.js';
import { repeat, type BenchOptions, type Scenario } from './types.js';

const RATE = 2_000;
/** Half the target rate: the latency with the machine about half busy. */
const LOW_RATE = 1_000;
const LOCATIONS = 10;
/** Readings per device before its spikes: the detector learns a sensor over 20. */
const WARM_UP = 25;
const PAPER = { value: 500, name: 'the paper: ingest-to-alert < 500 ms' };

const ALERT = (rate: number) => `ingest -> alert on the SSE stream at ${rate.toLocaleString('en')} readings/s`;
const OFFERED = 'readings accepted per second while offered 2,000/s';
const SUSTAINED = `readings/s sustained end to end (clients c=${HTTP_CONCURRENCY}, until all handled)`;
/** CPU time of the runtime's thread over the run's wall time: what the p99 follows (queueing on it). */
const BUSY = 'runtime thread busy at 2,000 readings/s (its CPU time over the run)';

export const airQualityScenario: Scenario = {
  name: '4. air-quality ingest to alert (vs the paper)',
  metrics: [
    { figure: `${ALERT(RATE)} p50`, unit: 'ms', higherIsBetter: false, baseline: PAPER },
    { figure: `${ALERT(RATE)} p99`, unit: 'ms', higherIsBetter: false, baseline: PAPER, target: { ratio: 25, text: 'p99 < 20 ms, 25x better than the paper' } },
    { figure: OFFERED, unit: 'readings/s', higherIsBetter: true, baseline: { value: RATE, name: 'offered rate' } },
    { figure: SUSTAINED, unit: 'readings/s', higherIsBetter: true, baseline: { value: RATE, name: 'the latency run\'s 2,000 readings/s' } },
    { figure: BUSY, unit: '%', higherIsBetter: false },
    { figure: `${ALERT(LOW_RATE)} p50`, unit: 'ms', higherIsBetter: false, baseline: PAPER },
    { figure: `${ALERT(LOW_RATE)} p99`, unit: 'ms', higherIsBetter: false, baseline: PAPER },
  ],
  measure: async (o, runs) => ({ runs: await repeat('scenario 4', runs, (run) => withLoad((load) => airQualityRun(load, o, run))) }),
};

async function airQualityRun(load: HttpLoad, o: BenchOptions, run: number): Promise<Record<string, number>> {
  const app = await startAirQuality();
  try {
    const { port, pid, target, alerts } = app;
    /**
     * Readings at `rate` with planted spikes, from fresh devices each sending 10 readings/s;
     * resolves with the alerts' latency figures and the rate the ingress accepted.
     */
    const alertRun = async (rate: number, prefix: string) => {
      const plan = alertPlan(Math.max(10, Math.round((o.alertDevices * rate) / RATE)), o.alertSeconds, rate, prefix);
      alerts.latencies = [];
      const cpu = threadCpuMs(pid, pid);
      const started = performance.now();
      const offered = await load.run({ kind: 'paced', target, body: { kind: 'reading', plan }, rate, count: totalReadings(plan) });
      await settled(port);
      // How busy the runtime's thread was (HTTP has a thread of its own): the headroom left.
      const busy = (100 * (threadCpuMs(pid, pid) - cpu)) / (performance.now() - started);
      const latencies = await alerts.awaitCount(plannedAlerts(plan));
      const share = ((100 * plannedAlerts(plan)) / totalReadings(plan)).toFixed(1);
      if (latencies.length !== plannedAlerts(plan)) log(`  warning at ${rate}/s: ${latencies.length} alerts arrived, ${plannedAlerts(plan)} planned; runtime thread ${busy.toFixed(0)}% busy`);
      else log(`  at ${rate}/s: ${latencies.length} alerts from ${totalReadings(plan).toLocaleString('en')} readings (${share}%), as planned; runtime thread ${busy.toFixed(0)}% busy`);
      return { figures: latencyFigures(ALERT(rate), Float64Array.from(latencies)), accepted: (offered.answered * 1000) / offered.elapsedMs, busy };
    };
    const low = await alertRun(LOW_RATE, `l${run}`);
    const high = await alertRun(RATE, `h${run}`);

    // Fresh devices, no spikes, event times 1 ms apart: only throughput is asked of this run.
    const steady: ReadingPlan = { devices: o.alertDevices, locations: LOCATIONS, warmUp: 0, perDevice: Math.ceil(o.sustainedReadings / o.alertDevices), spikes: false, prefix: `s${run}`, stepMs: 1 };
    const start = performance.now();
    await load.run({ kind: 'closed', target, body: { kind: 'reading', plan: steady }, concurrency: HTTP_CONCURRENCY, count: totalReadings(steady) });
    await settled(port);
    const sustained = (totalReadings(steady) * 1000) / (performance.now() - start);
    return { ...low.figures, ...high.figures, [OFFERED]: high.accepted, [SUSTAINED]: sustained, [BUSY]: high.busy };
  } finally {
    await app.stop();
  }
}

/** Readings from `devices` fresh devices (ids `<prefix>-<n>`) at `rate` for about `seconds` after their warm-up, two alerts planted per device. */
export function alertPlan(devices: number, seconds: number, rate: number, prefix: string): ReadingPlan {
  return { devices, locations: LOCATIONS, warmUp: WARM_UP, perDevice: WARM_UP + Math.ceil((seconds * rate) / devices), spikes: true, prefix, stepMs: 1000 / rate };
}

/** The air-quality app under test: `petrel dev` in a process of its own, with one device key and its alert stream open. */
export interface AirQualityUnderTest {
  port: number;
  pid: number;
  dataDir: string;
  /** POST /readings with the device key: 202 when accepted. */
  target: LoadTarget;
  alerts: AlertStream;
  /** Closes the stream, stops the process and removes its data. */
  stop(): Promise<void>;
}

export async function startAirQuality(): Promise<AirQualityUnderTest> {
  const key = randomBytes(24).toString('hex');
  const dataDir = tempDir('aq');
  const port = await freePort();
  const petrel = spawnPetrel(['dev', '--data-dir', dataDir], port, { PETREL_API_KEYS: key, PETREL_SIMULATE: '0' }, 'handlers/air-quality/app.ts');
  let alerts: AlertStream | undefined;
  const stop = async () => {
    alerts?.close();
    await petrel.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitHealthy(port, new Promise((resolve) => petrel.child.once('exit', resolve)));
    alerts = await AlertStream.open(port);
    const target: LoadTarget = { port, path: '/readings', headers: { authorization: `Bearer ${key}` }, status: 202 };
    return { port, pid: petrel.child.pid!, dataDir, target, alerts, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** An alert as the stream carries it (the fields read here). */
export interface StreamedAlert {
  id: string;
  location: string;
  ingestedAt: string;
}

/** The app's alert stream (`/alerts/stream`): each alert's latency, from its `ingestedAt` to its arrival here. */
export class AlertStream {
  latencies: number[] = [];
  /** Called with each alert as it arrives. */
  onAlert?: (alert: StreamedAlert, latencyMs: number) => void;

  private constructor(private readonly response: IncomingMessage) {
    let buffered = '';
    response.setEncoding('utf8').on('data', (chunk: string) => {
      const now = Date.now();
      const lines = (buffered + chunk).split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('data: ')) continue;
        const alert = JSON.parse(line.slice(6)) as StreamedAlert;
        const latency = now - Date.parse(alert.ingestedAt);
        this.latencies.push(latency);
        this.onAlert?.(alert, latency);
      }
    });
  }

  static open(port: number): Promise<AlertStream> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/alerts/stream' }, (response) => {
        if (response.statusCode !== 200) return reject(new Error(`GET /alerts/stream answered ${response.statusCode}`));
        // Subscribed once the stream's first line is here.
        response.once('data', () => resolve(stream));
        const stream = new AlertStream(response);
      });
      req.once('error', reject);
      req.end();
    });
  }

  /** The latencies once `count` alerts have arrived, or what has after 10 s. */
  async awaitCount(count: number): Promise<number[]> {
    for (let waited = 0; this.latencies.length < count && waited < 10_000; waited += 10) await sleep(10);
    return this.latencies;
  }

  close(): void {
    this.response.destroy();
  }
}

/** Resolves once every function of the app has settled every event (the lags /healthz reports are 0). */
export async function settled(port: number, timeoutMs = 600_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const lag = await lagOf(port);
    if (Object.values(lag).every((n) => n === 0)) return;
    if (Date.now() > until) throw new Error(`not settled after ${timeoutMs} ms: ${JSON.stringify(lag)}`);
    await sleep(20);
  }
}
