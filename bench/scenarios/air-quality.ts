/**
 * Scenario 4: ingest-to-alert latency of the air-quality app (handlers/air-quality) on the
 * embedded runtime, against the paper's 500 ms. Devices POST one reading per request to
 * /readings (device key in `Authorization: Bearer`, as PETREL_API_KEYS would configure) at
 * 2,000 readings/s, crafted (bench/readings.ts) so that exactly two alerts per device are raised.
 * Each alert is timed from its reading's ingest (the `ingesttime` the ingress stamps when the
 * request arrives) to the moment the runtime hands the committed alert to subscribers
 * (LocalRuntime.onEvent, what the app's SSE stream uses). Then: readings per second sustained
 * end to end, with the clients sending as fast as they are answered until all is handled. And
 * the same latency at 1,000 readings/s, half the target rate.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { DeviceAuth } from '../../adapters/http/auth.js';
import { LocalRuntime } from '../../adapters/local/index.js';
import type { CloudEvent } from '../../core/event.js';
import { ALERT_RAISED } from '../../handlers/air-quality/alerting.js';
import { createAirQualityApp } from '../../handlers/air-quality/app.js';
import { airQualityConfig } from '../../handlers/air-quality/config.js';
import { HTTP_CONCURRENCY, IDLE_TIMEOUT_MS, portOf, SILENT, tempDir, withLoad, type HttpLoad } from '../harness.js';
import type { LoadTarget } from '../http-worker.js';
import { plannedAlerts, totalReadings, type ReadingPlan } from '../readings.js';
import { latencyFigures, log } from '../stats.js';
import { repeat, type BenchOptions, type Scenario } from './types.js';

const RATE = 2_000;
/** Half the target rate: the latency with the machine about half busy. */
const LOW_RATE = 1_000;
const LOCATIONS = 10;
/** Readings per device before its spikes: the detector learns a sensor over 20. */
const WARM_UP = 25;
const PAPER = { value: 500, name: 'the paper: ingest-to-alert < 500 ms' };

const ALERT = (rate: number) => `ingest -> alert committed at ${rate.toLocaleString('en')} readings/s`;
const OFFERED = 'readings accepted per second while offered 2,000/s';
const SUSTAINED = `readings/s sustained end to end (clients c=${HTTP_CONCURRENCY}, until all handled)`;

export const airQualityScenario: Scenario = {
  name: '4. air-quality ingest to alert (vs the paper)',
  metrics: [
    { figure: `${ALERT(RATE)} p50`, unit: 'ms', higherIsBetter: false, baseline: PAPER },
    { figure: `${ALERT(RATE)} p99`, unit: 'ms', higherIsBetter: false, baseline: PAPER, target: { ratio: 25, text: 'p99 < 20 ms, 25x better than the paper' } },
    { figure: OFFERED, unit: 'readings/s', higherIsBetter: true, baseline: { value: RATE, name: 'offered rate' } },
    { figure: SUSTAINED, unit: 'readings/s', higherIsBetter: true, baseline: { value: RATE, name: 'the latency run\'s 2,000 readings/s' } },
    { figure: `${ALERT(LOW_RATE)} p50`, unit: 'ms', higherIsBetter: false, baseline: PAPER },
    { figure: `${ALERT(LOW_RATE)} p99`, unit: 'ms', higherIsBetter: false, baseline: PAPER },
  ],
  measure: async (o, runs) => ({ runs: await repeat('scenario 4', runs, (run) => withLoad((load) => airQualityRun(load, o, run))) }),
};

async function airQualityRun(load: HttpLoad, o: BenchOptions, run: number): Promise<Record<string, number>> {
  const key = randomBytes(24).toString('hex');
  const dataDir = tempDir('aq');
  const runtime = await LocalRuntime.start(createAirQualityApp(airQualityConfig()), { dataDir, logger: SILENT });
  let latencies: number[] = [];
  const unsubscribe = runtime.onEvent(ALERT_RAISED, (event: CloudEvent) => latencies.push(Date.now() - Date.parse(event.ingesttime!)));
  try {
    const target: LoadTarget = {
      port: portOf(await runtime.listen(0, '127.0.0.1', { deviceAuth: new DeviceAuth([key]) })),
      path: '/readings',
      headers: { authorization: `Bearer ${key}` },
      status: 202,
    };
    /**
     * Readings at `rate` with planted spikes, from fresh devices each sending 10 readings/s;
     * resolves with the alerts' latency figures and the rate the ingress accepted.
     */
    const alertRun = async (rate: number, prefix: string) => {
      const devices = Math.max(10, Math.round((o.alertDevices * rate) / RATE));
      const plan: ReadingPlan = { devices, locations: LOCATIONS, warmUp: WARM_UP, perDevice: WARM_UP + Math.ceil((o.alertSeconds * rate) / devices), spikes: true, prefix, stepMs: 1000 / rate };
      latencies = [];
      const loop = performance.eventLoopUtilization();
      const offered = await load.run({ kind: 'paced', target, body: { kind: 'reading', plan }, rate, count: totalReadings(plan) });
      await runtime.idle(IDLE_TIMEOUT_MS);
      // How busy the runtime's thread was (the load comes from a worker thread): the headroom left.
      const busy = (100 * performance.eventLoopUtilization(loop).utilization).toFixed(0);
      const share = ((100 * plannedAlerts(plan)) / totalReadings(plan)).toFixed(1);
      if (latencies.length !== plannedAlerts(plan)) log(`  warning at ${rate}/s: ${latencies.length} alerts raised, ${plannedAlerts(plan)} planned; runtime thread ${busy}% busy`);
      else log(`  at ${rate}/s: ${latencies.length} alerts from ${totalReadings(plan).toLocaleString('en')} readings (${share}%), as planned; runtime thread ${busy}% busy`);
      return { figures: latencyFigures(ALERT(rate), Float64Array.from(latencies)), accepted: (offered.answered * 1000) / offered.elapsedMs };
    };
    const low = await alertRun(LOW_RATE, `l${run}`);
    const high = await alertRun(RATE, `h${run}`);

    // Fresh devices, no spikes, event times 1 ms apart: only throughput is asked of this run.
    const steady: ReadingPlan = { devices: o.alertDevices, locations: LOCATIONS, warmUp: 0, perDevice: Math.ceil(o.sustainedReadings / o.alertDevices), spikes: false, prefix: `s${run}`, stepMs: 1 };
    const start = performance.now();
    await load.run({ kind: 'closed', target, body: { kind: 'reading', plan: steady }, concurrency: HTTP_CONCURRENCY, count: totalReadings(steady) });
    await runtime.idle(IDLE_TIMEOUT_MS);
    const sustained = (totalReadings(steady) * 1000) / (performance.now() - start);
    return { ...low.figures, ...high.figures, [OFFERED]: high.accepted, [SUSTAINED]: sustained };
  } finally {
    unsubscribe();
    await runtime.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
