/** What a scenario is: the figures it measures, how each compares with its baseline, and how it runs. */
import { log } from '../stats.js';

export interface BenchOptions {
  quick: boolean;
  /** Events per throughput run of the embedded runtime on its own. */
  events: number;
  /** Events per throughput run of scenario 1 (petrel and BullMQ). */
  queueEvents: number;
  /** Events published before each measured throughput or latency run. */
  warmUp: number;
  /** Length of each fixed-rate latency window. */
  latencySeconds: number;
  /** Length of each closed-loop HTTP window (and a quarter of it, at most 1 s, to warm up). */
  httpSeconds: number;
  /** Events per NATS transport run. */
  natsEvents: number;
  /** Simulated devices in the air-quality latency run (each raises two alerts). */
  alertDevices: number;
  /** Seconds of readings at 2,000/s per air-quality latency run, after the detector's warm-up. */
  alertSeconds: number;
  /** Readings per air-quality sustained-throughput run. */
  sustainedReadings: number;
  /** Measured cold starts per target, after one unmeasured. */
  coldStarts: number;
  /** Length of the memory run's sampled window. */
  memorySeconds: number;
}

export type Baseline =
  /** A figure measured in the same run: a peer, or the limit (bare express, raw nats.js). */
  | { figure: string; name: string }
  /** A fixed value: a published figure or a target from the issue. */
  | { value: number; name: string };

export interface MetricSpec {
  /** Petrel's figure: a key of each run's record. */
  figure: string;
  /** As shown and written; default: the figure's key. */
  metric?: string;
  unit: string;
  higherIsBetter: boolean;
  baseline?: Baseline;
  /**
   * The ratio the issue asks for. Ratios are oriented so that > 1 is petrel better: petrel /
   * baseline when higher is better, baseline / petrel when lower is.
   */
  target?: { ratio: number; text: string };
  /** A few words for the result column, from petrel's and the baseline's figures. */
  detail?: (petrel: number, baseline: number) => string;
}

export interface Measured {
  /** One record of figures per repetition. */
  runs: Array<Record<string, number>>;
  /** Figures that could not be measured here, with the reason (one line). */
  missing?: Record<string, string>;
  /** Caveats on figures that were measured (shown with every row using them). */
  notes?: Record<string, string>;
}

export interface Scenario {
  name: string;
  metrics: MetricSpec[];
  /** Runs `runs` warmed-up repetitions; skips what cannot run here, saying so in one line. */
  measure(options: BenchOptions, runs: number): Promise<Measured>;
}

/** Runs `once` `runs` times, printing each repetition's figures to stderr. */
export async function repeat(name: string, runs: number, once: (run: number) => Promise<Record<string, number>>): Promise<Array<Record<string, number>>> {
  const all: Array<Record<string, number>> = [];
  for (let i = 1; i <= runs; i++) {
    const began = performance.now();
    const figures = await once(i);
    all.push(figures);
    const text = Object.entries(figures).map(([key, value]) => `${key} ${formatValue(value)}`).join(', ');
    log(`${name} ${i}/${runs} (${((performance.now() - began) / 1000).toFixed(1)} s): ${text}`);
  }
  return all;
}

function formatValue(value: number): string {
  return Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en') : value.toPrecision(3);
}
