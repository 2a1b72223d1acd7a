/**
 * Event-time windows per location: 1-minute tumbling, and 5- and 60-minute sliding windows that
 * advance by one minute, all averaging each pollutant and giving the AQI of the averages.
 *
 * Sums are kept in integer millionths, so adding the same readings in any order (late ones last,
 * a correction as minus-old plus-new) gives exactly the same window: late data cannot change a
 * result by a rounding.
 */
import { computeAqi, POLLUTANTS, type AqiResult, type Pollutant } from './aqi.js';
import type { PollutantValues } from './anomaly.js';

export const MINUTE_MS = 60_000;
export const WINDOW_SIZES = [1, 5, 60] as const;
export type WindowSize = (typeof WINDOW_SIZES)[number];

const SCALE = 1_000_000;

/** Per pollutant: [sum in millionths, count]. */
export type Sums = Partial<Record<Pollutant, [number, number]>>;

export function minuteOf(timeMs: number): number {
  return Math.floor(timeMs / MINUTE_MS) * MINUTE_MS;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Adds (sign 1) or removes (sign -1) one reading's pollutant values. */
export function addValues(sums: Sums, values: PollutantValues, sign: 1 | -1 = 1): void {
  for (const p of POLLUTANTS) {
    const value = values[p];
    if (value === undefined) continue;
    const [sum, count] = sums[p] ?? [0, 0];
    const next: [number, number] = [sum + sign * Math.round(value * SCALE), count + sign];
    if (next[1] === 0) delete sums[p];
    else sums[p] = next;
  }
}

export function combineSums(list: readonly Sums[]): Sums {
  const total: Sums = {};
  for (const sums of list) {
    for (const p of POLLUTANTS) {
      const part = sums[p];
      if (!part) continue;
      const [sum, count] = total[p] ?? [0, 0];
      total[p] = [sum + part[0], count + part[1]];
    }
  }
  return total;
}

export function meansOf(sums: Sums): PollutantValues {
  const means: PollutantValues = {};
  for (const p of POLLUTANTS) {
    const part = sums[p];
    if (part && part[1] > 0) means[p] = Math.max(0, part[0] / part[1] / SCALE);
  }
  return means;
}

export function aqiOf(sums: Sums): AqiResult | undefined {
  return computeAqi(meansOf(sums));
}

/** Sort key of a window in the `windows` table: size, then start time. */
export function windowKey(size: number, startMs: number): string {
  return `${size}m#${iso(startMs)}`;
}

/** A window as stored and served. */
export interface WindowItem {
  location: string;
  key: string;
  size: WindowSize;
  start: string;
  end: string;
  /** Readings in the window. */
  readings: number;
  sums: Sums;
  means: PollutantValues;
  aqi?: number;
  category?: string;
  color?: string;
  pollutant?: Pollutant;
  /** False while the window may still change (its last minute is within the allowed lateness). */
  final: boolean;
  expires: number;
  [attribute: string]: unknown;
}

export function windowItem(location: string, size: WindowSize, startMs: number, sums: Sums, readings: number, final: boolean, retentionMs: number): WindowItem {
  const end = startMs + size * MINUTE_MS;
  const result = aqiOf(sums);
  const means = meansOf(sums);
  for (const p of POLLUTANTS) if (means[p] !== undefined) means[p] = Math.round(means[p]! * 1e6) / 1e6;
  return {
    location,
    key: windowKey(size, startMs),
    size,
    start: iso(startMs),
    end: iso(end),
    readings,
    sums,
    means,
    ...(result ? { aqi: result.aqi, category: result.category.name, color: result.category.color, pollutant: result.pollutant } : {}),
    final,
    expires: Math.floor((end + retentionMs) / 1000),
  };
}
