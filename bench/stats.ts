/** Pacing, percentiles and progress lines: shared by the scenarios and the load worker. */

/**
 * Calls `fire(k)` for k = 0..total-1 at `perSecond`, catching up every 1 ms tick on however many
 * are due since the start (so a late tick does not lower the rate). Resolves with the achieved rate.
 */
export function pace(perSecond: number, total: number, fire: (k: number) => void): Promise<number> {
  return new Promise((resolve) => {
    const start = performance.now();
    let sent = 0;
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * perSecond) / 1000));
      while (sent < due) fire(sent++);
      if (sent < total) return;
      clearInterval(timer);
      resolve((sent * 1000) / (performance.now() - start));
    };
    const timer = setInterval(tick, 1);
  });
}

/** Percentile of an ascending-sorted array (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** p50 / p99 / max of `values` (sorted in place), under `<prefix> p50` and so on. */
export function latencyFigures(prefix: string, values: Float64Array): Record<string, number> {
  values.sort();
  return { [`${prefix} p50`]: percentile(values, 50), [`${prefix} p99`]: percentile(values, 99), [`${prefix} max`]: percentile(values, 100) };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** Progress goes to stderr, so stdout holds only the table. */
export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
