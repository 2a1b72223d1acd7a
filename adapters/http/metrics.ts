/**
 * Prometheus metrics for every non-AWS target (prom-client): invocations, errors, retries, dead
 * letters, duration, lag per function, and ingest-to-effect latencies.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Metrics, Outcome } from '../../core/ports.js';

export interface MetricSources {
  /** Events in the log not yet settled, per function. */
  lag(): Record<string, number>;
  /** Dead letters currently stored, per function. */
  deadLetters(): Record<string, number>;
}

export class PromMetrics implements Metrics {
  readonly registry = new Registry();
  private readonly invocations;
  private readonly errors;
  private readonly retries;
  private readonly deadLettered;
  private readonly duration;
  private readonly latency;
  readonly accepted;
  /** Labelled series, made once each: prom-client otherwise hashes the labels on every call. */
  private readonly invokedSeries = new Map<string, { count: { inc(): void }; duration: { observe(seconds: number): void } }>();
  private readonly latencySeries = new Map<string, { observe(seconds: number): void }>();

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.invocations = new Counter({ name: 'petrel_invocations_total', help: 'Handler invocations by outcome', labelNames: ['function', 'outcome'], registers });
    this.errors = new Counter({ name: 'petrel_errors_total', help: 'Handler attempts that failed', labelNames: ['function'], registers });
    this.retries = new Counter({ name: 'petrel_retries_total', help: 'Failed attempts scheduled for another try', labelNames: ['function'], registers });
    this.deadLettered = new Counter({ name: 'petrel_dead_letters_total', help: 'Events dead-lettered after their last attempt', labelNames: ['function'], registers });
    this.duration = new Histogram({
      name: 'petrel_invocation_duration_seconds',
      help: 'Handler duration',
      labelNames: ['function'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.latency = new Histogram({
      name: 'petrel_latency_seconds',
      help: 'Time from an event entering petrel (ingesttime) to an effect, by effect',
      labelNames: ['name'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers,
    });
    this.accepted = new Counter({ name: 'petrel_events_accepted_total', help: 'Events accepted durably by the ingress', registers });
    new Gauge({
      name: 'petrel_lag_events',
      help: 'Events in the log a function has not settled yet',
      labelNames: ['function'],
      registers,
      collect() {
        for (const [fn, n] of Object.entries(sources.lag())) this.set({ function: fn }, n);
      },
    });
    new Gauge({
      name: 'petrel_dead_letters',
      help: 'Dead letters stored, waiting for redrive',
      labelNames: ['function'],
      registers,
      collect() {
        this.reset();
        for (const [fn, n] of Object.entries(sources.deadLetters())) this.set({ function: fn }, n);
      },
    });
  }

  invoked(fn: string, outcome: Outcome, durationMs: number): void {
    const key = `${fn}\u0000${outcome}`;
    let series = this.invokedSeries.get(key);
    if (!series) this.invokedSeries.set(key, (series = { count: this.invocations.labels({ function: fn, outcome }), duration: this.duration.labels({ function: fn }) }));
    series.count.inc();
    if (outcome === 'duplicate') return;
    series.duration.observe(durationMs / 1000);
    if (outcome === 'retry' || outcome === 'dead') this.errors.inc({ function: fn });
    if (outcome === 'retry') this.retries.inc({ function: fn });
    if (outcome === 'dead') this.deadLettered.inc({ function: fn });
  }

  observeLatency(name: string, ms: number): void {
    let series = this.latencySeries.get(name);
    if (!series) this.latencySeries.set(name, (series = this.latency.labels({ name })));
    series.observe(ms / 1000);
  }
}
