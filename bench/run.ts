/**
 * `npm run bench [-- --quick] [--runs N] [--events N] [--only TEXT]`
 *
 * Benchmarks a one-function app on the embedded runtime (LocalRuntime): durable throughput
 * in-process and over HTTP, and accept-to-handler latency at fixed rates. Each scenario runs
 * `runs` times (default 3) on a fresh runtime and temp dir; the median of each figure is printed
 * beside the issue's targets and written to bench/results/latest-embedded.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { log, median } from './harness.js';
import { scenarios, type BenchOptions, type MetricSpec } from './scenarios.js';

/** One figure as written to the results file. */
interface ResultRow {
  scenario: string;
  metric: string;
  unit: string;
  petrel: number;
  /** The issue's target, or a peer measured in the same run (bare express); null: for information. */
  baseline: number | null;
  baselineName: string | null;
  /** petrel / baseline (baseline / petrel when lower is better): >= 1 meets the target or beats the peer. */
  ratio: number | null;
  higherIsBetter: boolean;
}

const FULL: BenchOptions = { events: 100_000, warmUp: 5_000, latencySeconds: 10, postSeconds: 10 };
const QUICK: BenchOptions = { events: 10_000, warmUp: 1_000, latencySeconds: 3, postSeconds: 1 };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      events: { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: npm run bench -- [--quick] [--runs N (default 3)] [--events N] [--only <text in scenario name>]\n');
    return;
  }
  const options = { ...(values.quick ? QUICK : FULL) };
  if (values.events !== undefined) options.events = positiveInt('--events', values.events);
  const runs = values.runs === undefined ? 3 : positiveInt('--runs', values.runs);
  const chosen = scenarios.filter((s) => !values.only || s.name.includes(values.only));
  if (chosen.length === 0) throw new UsageError(`--only "${values.only}" matches no scenario; scenarios: ${scenarios.map((s) => s.name).join(' | ')}`);

  log(`${values.quick ? 'quick' : 'full'} mode: ${options.events.toLocaleString('en')} events per throughput run, ${options.latencySeconds} s latency windows, ${runs} runs per scenario, median reported`);
  const rows: ResultRow[] = [];
  const began = performance.now();
  for (const scenario of chosen) {
    const perRun: Array<Record<string, number>> = [];
    for (let i = 1; i <= runs; i++) {
      log(`${scenario.name}: run ${i}/${runs}`);
      const runStart = performance.now();
      const figures = await scenario.run(options);
      perRun.push(figures);
      const took = ((performance.now() - runStart) / 1000).toFixed(1);
      log(`  ${scenario.metrics.map((m) => `${m.name} ${format(figures[m.name], m.unit)}`).join(', ')} (${took} s)`);
    }
    const medianOf = (metric: string) => median(perRun.map((f) => f[metric]));
    for (const metric of scenario.metrics) rows.push(row(scenario.name, metric, medianOf(metric.name), metric.baselineFrom && medianOf(metric.baselineFrom.metric)));
  }
  log(`done in ${((performance.now() - began) / 1000).toFixed(1)} s`);

  printTable(rows);
  const file = join(dirname(fileURLToPath(import.meta.url)), 'results', 'latest-embedded.json');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(rows, null, 2)}\n`);
  process.stdout.write(`\nresults written to ${file}\n`);
}

function row(scenario: string, metric: MetricSpec, value: number, measuredBaseline?: number): ResultRow {
  if (!Number.isFinite(value)) throw new Error(`${scenario}: ${metric.name} is ${value}; the scenario measured nothing`);
  const baseline = metric.target?.value ?? measuredBaseline;
  return {
    scenario,
    metric: metric.name,
    unit: metric.unit,
    petrel: value,
    baseline: baseline ?? null,
    baselineName: metric.target?.name ?? metric.baselineFrom?.name ?? null,
    ratio: baseline === undefined ? null : metric.higherIsBetter ? value / baseline : baseline / value,
    higherIsBetter: metric.higherIsBetter,
  };
}

function printTable(rows: ResultRow[]): void {
  const header = ['scenario', 'metric', 'value', 'target / baseline', 'result'];
  const lines = rows.map((r) => [r.scenario, r.metric, format(r.petrel, r.unit), targetText(r), verdict(r)]);
  const widths = header.map((h, c) => Math.max(h.length, ...lines.map((l) => l[c].length)));
  const print = (cells: string[]) => process.stdout.write(`${cells.map((cell, c) => (c === 2 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd()}\n`);
  process.stdout.write('\n');
  print(header);
  print(widths.map((w) => '-'.repeat(w)));
  let previous = '';
  for (const line of lines) {
    print([line[0] === previous ? '' : line[0], ...line.slice(1)]);
    previous = line[0];
  }
}

/** A target from the issue, or a peer measured alongside (then the ratio is shown, not a verdict). */
function isTarget(r: ResultRow): boolean {
  return r.baselineName?.startsWith('target') ?? false;
}

function targetText(r: ResultRow): string {
  if (r.baseline === null) return '';
  if (!isTarget(r)) return `${r.baselineName}: ${format(r.baseline, r.unit)}`;
  return `${r.higherIsBetter ? '>=' : '<'} ${format(r.baseline, r.unit)}`;
}

function verdict(r: ResultRow): string {
  if (r.baseline === null || r.ratio === null) return '';
  if (!isTarget(r)) return `${r.ratio.toFixed(2)}x the peer`;
  if (r.ratio >= 1) return 'pass';
  const gap = Math.abs(r.petrel - r.baseline);
  return `short by ${format(gap, r.unit)} (${(Math.abs(1 - r.petrel / r.baseline) * 100).toFixed(0)}%)`;
}

function format(value: number, unit: string): string {
  if (unit === 'ms') return `${value.toFixed(value < 1 ? 3 : 2)} ms`;
  return `${Math.round(value).toLocaleString('en')} ${unit}`;
}

function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${text}"`);
  return n;
}

/** A bad command line: the message says it all, no stack needed. */
class UsageError extends Error {}

main().catch((error: unknown) => {
  const usage = error instanceof UsageError || String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
  const text = error instanceof Error ? (usage ? error.message : (error.stack ?? error.message)) : String(error);
  process.stderr.write(`\nbench failed: ${text}\n${usage ? 'usage: npm run bench -- --help\n' : ''}`);
  process.exit(1);
});
