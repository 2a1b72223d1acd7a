/**
 * Air-quality readings for the ingest-to-alert scenario, crafted so a known number raise alerts.
 *
 * Reading k goes to device k mod `devices`, so every device reports at the same pace. Values are
 * steady clean air with ±5% noise (deterministic), which the app's spike detector learns over its
 * 20-reading warm-up. With `spikes`, each device has one pm25 spike (x8) after its warm-up and a
 * pm10 spike three readings later; the detector confirms a spike on the next reading, when the
 * sensor is back near its level, and raises one alert per pollutant and device (a cooldown of 30
 * minutes of event time keeps it to one). So a run raises exactly 2 x `devices` alerts.
 */

export interface ReadingPlan {
  devices: number;
  locations: number;
  /** Readings per device in all. */
  perDevice: number;
  /** Readings per device before the first spike (the detector needs 20). */
  warmUp: number;
  spikes: boolean;
  /** Device ids are `<prefix>-<n>`: a fresh prefix gives fresh detector state. */
  prefix: string;
  /** Event time of reading k is the run's start plus k x stepMs. */
  stepMs: number;
}

export interface BenchReading {
  deviceId: string;
  location: string;
  time: string;
  pm25: number;
  pm10: number;
}

const SPIKE_FACTOR = 8;
const NOISE = 0.05;
/** Readings a spike needs after it: its own confirmation, the pm10 spike and that one's confirmation. */
const SPIKE_TAIL = 5;

export function totalReadings(plan: ReadingPlan): number {
  return plan.devices * plan.perDevice;
}

export function plannedAlerts(plan: ReadingPlan): number {
  return plan.spikes ? 2 * plan.devices : 0;
}

export function readingAt(plan: ReadingPlan, k: number, startMs: number): BenchReading {
  const device = k % plan.devices;
  const n = Math.floor(k / plan.devices);
  const base = 8 + (device % 10);
  let pm25 = base * (1 + NOISE * (2 * unit(device, n, 1) - 1));
  let pm10 = 2 * base * (1 + NOISE * (2 * unit(device, n, 2) - 1));
  if (plan.spikes) {
    const span = Math.max(1, plan.perDevice - plan.warmUp - SPIKE_TAIL);
    const spikeAt = plan.warmUp + ((device * 7919) % span);
    if (n === spikeAt) pm25 *= SPIKE_FACTOR;
    if (n === spikeAt + 3) pm10 *= SPIKE_FACTOR;
  }
  return {
    deviceId: `${plan.prefix}-${device}`,
    location: `loc-${device % plan.locations}`,
    time: new Date(Math.round(startMs + k * plan.stepMs)).toISOString(),
    pm25: Math.round(pm25 * 100) / 100,
    pm10: Math.round(pm10 * 100) / 100,
  };
}

/** A deterministic value in [0, 1) for (device, reading, channel): a small integer hash. */
function unit(device: number, n: number, channel: number): number {
  let h = Math.imul(device + 1, 0x9e3779b1) ^ Math.imul(n + 1, 0x85ebca77) ^ Math.imul(channel, 0xc2b2ae3d);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32;
}
