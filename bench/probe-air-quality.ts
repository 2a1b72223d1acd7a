/**
 * `npx tsx bench/probe-air-quality.ts [--rate 2000] [--seconds 10] [--phases 3] [--journeys]`:
 * a closer look at bench scenario 4's load than its medians give, for finding where the runtime
 * thread's time and the alerts' latency go.
 *
 * Starts the air-quality app as `petrel dev` (its pid is printed, for `perf record -t <pid>`) and,
 * per phase, sends readings one per request at `--rate` for `--seconds` from fresh devices (the
 * bench's crafted readings: 2 alerts per device). After each phase, once everything is handled,
 * it prints the runtime thread's busy share and CPU time per reading, the bytes that thread wrote
 * per reading (nearly all SQLite's WAL), the CPU of the process's other threads (ingress,
 * checkpointer, V8's helpers), and the alerts' latency on the Server-Sent Events stream. With
 * `--journeys`, up to 10 alerts a phase slower than 20 ms have their journey fetched as they
 * arrive (the console's /admin/journey; its journal keeps the last 10,000 invocations) and
 * printed as each invocation's start after the reading's ingest, and its duration.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { positiveInt, runCli } from './cli.js';
import { threadCpuMs, withLoad } from './harness.js';
import { plannedAlerts, totalReadings } from './readings.js';
import { alertPlan, settled, startAirQuality, type StreamedAlert } from './scenarios/air-quality.js';
import { percentile } from './stats.js';

const USAGE = 'npx tsx bench/probe-air-quality.ts [--rate N (2000)] [--seconds N (10)] [--phases N (3)] [--journeys]';
const DEVICES = 200;
const SLOW_MS = 20;
const JOURNEYS_PER_PHASE = 10;

interface ThreadUse {
  cpuMs: number;
  /** Bytes the thread wrote through system calls (/proc's wchar). */
  wrote: number;
}

/** Each thread's CPU time and bytes written so far, by thread id. */
function threadUse(pid: number): Map<number, ThreadUse> {
  const use = new Map<number, ThreadUse>();
  for (const tid of readdirSync(`/proc/${pid}/task`).map(Number)) {
    try {
      const wrote = Number(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${tid}/io`, 'utf8'))?.[1] ?? 0);
      use.set(tid, { cpuMs: threadCpuMs(pid, tid), wrote });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return use;
}

interface JourneyStep {
  event: { ingesttime?: string; time?: string };
  invocations: Array<{ fn: string; startedAt: number; durationMs: number }>;
}

/** One line: where a slow alert spent its time, from its journey. */
async function journeyLine(port: number, alert: StreamedAlert, latency: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/admin/journey/${encodeURIComponent(alert.id)}?location=${encodeURIComponent(alert.location)}`);
  if (res.status !== 200) return `  alert ${alert.id} (${latency} ms): no journey (${res.status})`;
  const { steps } = (await res.json()) as { steps: JourneyStep[] };
  const ingested = Date.parse(steps[0].event.ingesttime ?? steps[0].event.time ?? '');
  const calls = steps.flatMap((step) => step.invocations.map((i) => `${i.fn} +${(i.startedAt - ingested).toFixed(1)} (${i.durationMs.toFixed(1)})`));
  return `  alert at ${latency} ms: ${calls.join(', ')}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '2000' },
      seconds: { type: 'string', default: '10' },
      phases: { type: 'string', default: '3' },
      journeys: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return void process.stdout.write(`usage: ${USAGE}\n`);
  const rate = positiveInt('--rate', values.rate);
  const seconds = positiveInt('--seconds', values.seconds);
  const phases = positiveInt('--phases', values.phases);

  const app = await startAirQuality();
  try {
    const { port, pid, target, alerts } = app;
    process.stdout.write(`petrel dev: pid ${pid}, port ${port}, data in ${app.dataDir}\n`);
    await withLoad(async (load) => {
      for (let phase = 1; phase <= phases; phase++) {
        const plan = alertPlan(DEVICES, seconds, rate, `p${phase}`);
        const readings = totalReadings(plan);
        const journeys: Array<Promise<string>> = [];
        alerts.latencies = [];
        alerts.onAlert = (alert, latency) => {
          if (values.journeys && latency > SLOW_MS && journeys.length < JOURNEYS_PER_PHASE) journeys.push(journeyLine(port, alert, latency));
        };
        const before = threadUse(pid);
        const started = performance.now();
        await load.run({ kind: 'paced', target, body: { kind: 'reading', plan }, rate, count: readings });
        await settled(port);
        const wallMs = performance.now() - started;
        const after = threadUse(pid);
        const latencies = Float64Array.from(await alerts.awaitCount(plannedAlerts(plan))).sort();
        const runtime = { cpuMs: after.get(pid)!.cpuMs - before.get(pid)!.cpuMs, wrote: after.get(pid)!.wrote - before.get(pid)!.wrote };
        let othersMs = 0;
        for (const [tid, use] of after) if (tid !== pid) othersMs += use.cpuMs - (before.get(tid)?.cpuMs ?? 0);
        const ms = (p: number) => (latencies.length ? `${percentile(latencies, p)}` : '-');
        process.stdout.write(
          `phase ${phase}: ${readings.toLocaleString('en')} readings; runtime thread ${((100 * runtime.cpuMs) / wallMs).toFixed(0)}% busy, ` +
            `${((1000 * runtime.cpuMs) / readings).toFixed(0)} us and ${(runtime.wrote / readings / 1024).toFixed(1)} KB written per reading; ` +
            `other threads ${((100 * othersMs) / wallMs).toFixed(0)}% of a core; alerts ${latencies.length}/${plannedAlerts(plan)}, ` +
            `ms after ingest p50 ${ms(50)} p99 ${ms(99)} max ${latencies.length ? latencies[latencies.length - 1] : '-'}\n`,
        );
        for (const line of await Promise.all(journeys)) process.stdout.write(`${line}\n`);
      }
    });
  } finally {
    await app.stop();
  }
}

runCli('probe', USAGE, main);
