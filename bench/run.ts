/**
 * `npm run bench [-- --quick] [--runs N] [--only TEXT]`
 *
 * Runs every scenario (bench/scenarios/), each warmed up and repeated (3 runs by default), and
 * reports the median of each figure beside its baseline: a peer measured in the same run (BullMQ,
 * raw nats.js, bare express, serverless-offline, `node -e 0`), a published figure, or a target.
 * Progress goes to stderr; the table to stdout; the figures to bench/results/latest.json, a
 * Markdown table to latest.md and a chart to latest.svg. See bench/README.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { positiveInt, runCli, UsageError } from './cli.js';
import { markdownTable, svgChart, textTable, type ResultRow } from './report.js';
import { scenarios } from './scenarios/index.js';
import type { BenchOptions, Measured, MetricSpec } from './scenarios/types.js';
import { log, median } from './stats.js';

// Sized so that on the 2-core development machine, shared, the full run takes about 11 minutes
// and the quick one under 3.
const FULL: BenchOptions = {
  quick: false,
  events: 50_000,
  queueEvents: 20_000,
  warmUp: 5_000,
  latencySeconds: 5,
  httpSeconds: 4,
  natsEvents: 30_000,
  // 400 alerts per run: a p99 of 200 was their second largest, and moved with one stall.
  alertDevices: 200,
  alertSeconds: 5,
  sustainedReadings: 4_000,
  coldStarts: 5,
  memorySeconds: 120,
};

const QUICK: BenchOptions = {
  quick: true,
  events: 10_000,
  queueEvents: 3_000,
  warmUp: 1_000,
  latencySeconds: 1,
  httpSeconds: 0.75,
  natsEvents: 5_000,
  alertDevices: 30,
  alertSeconds: 0.75,
  sustainedReadings: 600,
  coldStarts: 3,
  memorySeconds: 30,
};

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: npm run bench -- [--quick] [--runs N (default 3)] [--only <text in scenario names>]\n');
    return;
  }
  const options = values.quick ? QUICK : FULL;
  const runs = values.runs === undefined ? 3 : positiveInt('--runs', values.runs);
  const chosen = scenarios.filter((s) => !values.only || s.name.includes(values.only));
  if (chosen.length === 0) throw new UsageError(`--only "${values.only}" matches no scenario; scenarios: ${scenarios.map((s) => s.name).join(' | ')}`);

  const mode = `${values.quick ? 'quick' : 'full'} mode, ${runs} runs per scenario, medians`;
  log(`${mode}; ${chosen.length} scenario(s)`);
  const rows: ResultRow[] = [];
  const failed: string[] = [];
  const began = performance.now();
  for (const scenario of chosen) {
    const started = performance.now();
    log(`== ${scenario.name}`);
    try {
      const measured = await scenario.measure(options, runs);
      rows.push(...scenario.metrics.flatMap((metric) => rowOf(scenario.name, metric, measured)));
      log(`== ${scenario.name}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } catch (error) {
      failed.push(`${scenario.name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      log(`== ${scenario.name} FAILED: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const took = (performance.now() - began) / 1000;
  log(`done in ${took.toFixed(1)} s`);

  process.stdout.write(`\n${textTable(rows)}`);
  const notes = [...new Set(rows.flatMap((r) => (r.note ? [r.note] : [])))];
  for (const note of notes) process.stdout.write(`note: ${note}\n`);
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'latest.json'), `${JSON.stringify(rows, null, 2)}\n`);
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.versions.node}`;
  const subtitle = `npm run bench${values.quick ? ' -- --quick' : ''}: ${mode}; ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; ${machine}; ${took.toFixed(0)} s`;
  writeFileSync(join(RESULTS, 'latest.md'), `${subtitle}\n\n${markdownTable(rows)}${notes.map((n) => `\nNote: ${n}\n`).join('')}`);
  writeFileSync(join(RESULTS, 'latest.svg'), svgChart(rows, subtitle));
  process.stdout.write(`\nresults: ${join(RESULTS, 'latest.json')}, latest.md, latest.svg\n`);
  if (failed.length > 0) {
    process.stderr.write(`\n${failed.length} scenario(s) failed:\n${failed.join('\n')}\n`);
    process.exitCode = 1;
  }
}

/** The row of one metric: medians over the runs that measured it; none when petrel's figure is missing. */
function rowOf(scenario: string, metric: MetricSpec, measured: Measured): ResultRow[] {
  const values = (figure: string) => measured.runs.map((r) => r[figure]).filter((v): v is number => Number.isFinite(v));
  const mine = values(metric.figure);
  if (mine.length === 0) return [];
  const petrel = median(mine);
  let baseline: number | null = null;
  let note = measured.notes?.[metric.figure];
  if (metric.baseline && 'value' in metric.baseline) baseline = metric.baseline.value;
  else if (metric.baseline) {
    const theirs = values(metric.baseline.figure);
    if (theirs.length > 0) baseline = median(theirs);
    else note = `${metric.baseline.name} could not run: ${measured.missing?.[metric.baseline.figure] ?? 'not measured'}`;
    note = [note, measured.notes?.[metric.baseline.figure]].filter(Boolean).join('; ') || undefined;
  }
  const ratio = baseline === null ? null : metric.higherIsBetter ? petrel / baseline : baseline / petrel;
  const target = metric.target && ratio !== null ? metric.target : undefined;
  return [
    {
      scenario,
      metric: metric.metric ?? metric.figure,
      unit: metric.unit,
      petrel,
      baseline,
      baselineName: metric.baseline?.name ?? null,
      ratio,
      higherIsBetter: metric.higherIsBetter,
      target: target?.ratio ?? null,
      targetText: target?.text ?? null,
      meetsTarget: target ? ratio! >= target.ratio : null,
      runs: mine,
      ...(note ? { note } : {}),
      ...(metric.detail && baseline !== null ? { detail: metric.detail(petrel, baseline) } : {}),
    },
  ];
}

runCli('bench', 'npm run bench -- --help', main);
