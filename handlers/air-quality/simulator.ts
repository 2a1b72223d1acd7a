/**
 * A city of simulated air-quality sensors: N devices in M locations, each location with a diurnal
 * cycle (traffic peaks for PM, NO2 and CO; an afternoon peak for ozone) and pollution episodes,
 * each device with its own gain and noise, and some devices faulty from a known time on: stuck
 * (frozen output), spiking (intermittent outliers) or drifting (a growing PM2.5 gain). The faults
 * are the ground truth the anomaly detector is measured against.
 *
 * Deterministic for a seed: the same options give the same readings, so tests can replay a run.
 * `runSimulation` paces readings in real time at a rate and hands them to a sender (HTTP here;
 * the CLI adds MQTT).
 */
import { createHash } from 'node:crypto';
import type { AnomalyKind } from './anomaly.js';
import type { Reading } from './reading.js';

export interface SimulatorOptions {
  devices: number;
  locations: number;
  seed?: number;
  /** Faulty devices per kind. */
  faults?: Partial<Record<AnomalyKind, number>>;
  /** Faults begin at a time drawn per device in [from, to), epoch ms (event time). */
  faultWindow?: [number, number];
  /** Relative noise of a sensor (standard deviation). */
  noise?: number;
}

export interface FaultTruth {
  deviceId: string;
  location: string;
  kind: AnomalyKind;
  /** When the fault begins (epoch ms); a spiking sensor's first spike is its first reading from then. */
  onset: number;
}

interface Device {
  deviceId: string;
  location: number;
  gain: Record<Channel, number>;
  fault?: FaultTruth;
  random: () => number;
  frozen?: Omit<Reading, 'time'>;
  last?: Omit<Reading, 'time'>;
  spiked: boolean;
}

type Channel = 'pm25' | 'pm10' | 'o3' | 'no2' | 'co';
const CHANNELS: readonly Channel[] = ['pm25', 'pm10', 'o3', 'no2', 'co'];
/** Reporting resolution (decimals) and additive noise floor per channel. */
const DECIMALS: Record<Channel, number> = { pm25: 1, pm10: 1, o3: 3, no2: 1, co: 2 };
const NOISE_FLOOR: Record<Channel, number> = { pm25: 0.3, pm10: 0.5, o3: 0.001, no2: 0.5, co: 0.02 };
const MAX_VALUE: Record<Channel, number> = { pm25: 1000, pm10: 2000, o3: 1, no2: 2000, co: 100 };

export const LOCATION_NAMES = ['harbour', 'downtown', 'old-town', 'university', 'airport', 'riverside', 'industrial-park', 'hillside', 'market', 'stadium'];

const HOUR = 3_600_000;
const MINUTE = 60_000;
/** Episodes are drawn per location per slot of this length. */
const EPISODE_SLOT = 3 * HOUR;
/** How much faster than linear a drifting sensor's PM2.5 gain grows: +3% per minute. */
export const DRIFT_PER_MINUTE = 0.03;
export const SPIKE_PROBABILITY = 0.25;

/** mulberry32: a small, fast, seedable PRNG (public domain). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function seedOf(...parts: Array<string | number>): number {
  return createHash('sha256').update(parts.join('\0')).digest().readUInt32LE(0);
}

function gaussian(random: () => number): number {
  // Box-Muller; 1 - random() is in (0, 1], so the log is finite.
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

const uniform = (random: () => number, lo: number, hi: number) => lo + (hi - lo) * random();

interface Episode {
  start: number;
  rise: number;
  plateau: number;
  decay: number;
  peak: number;
}

interface LocationModel {
  name: string;
  base: Record<Channel, number>;
}

export class AirQualitySimulator {
  readonly locations: LocationModel[];
  private readonly devices: Device[];
  private readonly seed: number;
  private readonly noise: number;
  private next = 0;
  private readonly episodes = new Map<string, Episode | undefined>();

  constructor(options: SimulatorOptions) {
    if (!Number.isInteger(options.devices) || options.devices < 1) throw new RangeError('devices must be a positive integer');
    if (!Number.isInteger(options.locations) || options.locations < 1 || options.locations > options.devices) throw new RangeError('locations must be an integer from 1 to the number of devices');
    this.seed = options.seed ?? 1;
    this.noise = options.noise ?? 0.04;
    const random = prng(seedOf(this.seed, 'city'));
    this.locations = Array.from({ length: options.locations }, (_, i) => {
      const pm25 = uniform(random, 5, 12);
      return {
        name: LOCATION_NAMES[i] ?? `district-${i + 1}`,
        base: { pm25, pm10: pm25 * uniform(random, 1.6, 2.2), o3: uniform(random, 0.02, 0.035), no2: uniform(random, 10, 30), co: uniform(random, 0.3, 0.6) },
      };
    });
    this.devices = Array.from({ length: options.devices }, (_, i) => {
      const location = i % options.locations;
      const deviceRandom = prng(seedOf(this.seed, 'device', i));
      const gain = Object.fromEntries(CHANNELS.map((c) => [c, uniform(deviceRandom, 0.9, 1.1)])) as Record<Channel, number>;
      const name = this.locations[location].name;
      return { deviceId: `sim-${name}-${Math.floor(i / options.locations) + 1}`, location, gain, random: deviceRandom, spiked: false };
    });
    // Faulty devices: a seeded shuffle, so they are spread over locations.
    const order = this.devices.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const [from, to] = options.faultWindow ?? [0, 0];
    let taken = 0;
    for (const kind of ['stuck', 'spike', 'drift'] as const) {
      const count = options.faults?.[kind] ?? 0;
      if (taken + count > this.devices.length) throw new RangeError('more faulty devices than devices');
      for (const index of order.slice(taken, taken + count)) {
        const device = this.devices[index];
        device.fault = { deviceId: device.deviceId, location: this.locations[device.location].name, kind, onset: Math.floor(uniform(random, from, to)) };
      }
      taken += count;
    }
  }

  get deviceIds(): string[] {
    return this.devices.map((d) => d.deviceId);
  }

  /** The injected faults: what an anomaly detector should find. */
  faults(): FaultTruth[] {
    return this.devices.flatMap((d) => (d.fault ? [d.fault] : []));
  }

  /** The true concentration of a pollutant at a location and time, before any sensor error. */
  truth(location: number, timeMs: number, channel: Channel): number {
    const model = this.locations[location];
    const hour = (timeMs % (24 * HOUR)) / HOUR;
    const bump = (center: number, width: number) => Math.exp(-((((hour - center + 36) % 24) - 12) ** 2) / (2 * width * width));
    const diurnal = channel === 'o3' ? 0.55 + 0.9 * bump(15, 2.5) : 0.75 + 0.7 * bump(8, 1.5) + 0.55 * bump(18, 2);
    const episode = this.episodeFactor(location, timeMs);
    const boost = channel === 'pm25' || channel === 'pm10' ? episode : channel === 'o3' ? 1 : 1 + (episode - 1) * 0.3;
    return model.base[channel] * diurnal * boost;
  }

  /** One reading from every device at `timeMs`, in device order. */
  readingsAt(timeMs: number): Reading[] {
    return this.devices.map((d) => this.read(d, timeMs));
  }

  /** The next device's reading at `timeMs` (round robin): how a live run spreads its rate over devices. */
  nextReading(timeMs: number): Reading {
    const device = this.devices[this.next];
    this.next = (this.next + 1) % this.devices.length;
    return this.read(device, timeMs);
  }

  /** A multiplier >= 1 on particles: smooth episodes of 1.5-3.5 hours, peaking at 3-9x. */
  private episodeFactor(location: number, timeMs: number): number {
    let factor = 1;
    const slot = Math.floor(timeMs / EPISODE_SLOT);
    // An episode drawn in the previous slot may still be under way.
    for (const episode of [this.episode(location, slot - 1), this.episode(location, slot)]) {
      if (!episode) continue;
      const { start, rise, plateau, decay, peak } = episode;
      const t = timeMs - start;
      const shape = t < 0 ? 0 : t < rise ? (1 - Math.cos((Math.PI * t) / rise)) / 2 : t < rise + plateau ? 1 : t < rise + plateau + decay ? (1 + Math.cos((Math.PI * (t - rise - plateau)) / decay)) / 2 : 0;
      factor = Math.max(factor, 1 + (peak - 1) * shape);
    }
    return factor;
  }

  /** The episode drawn for a location in one slot (half the slots have one), memoized. */
  private episode(location: number, slot: number): Episode | undefined {
    const key = `${location}:${slot}`;
    if (!this.episodes.has(key)) {
      const random = prng(seedOf(this.seed, 'episode', location, slot));
      this.episodes.set(key, random() < 0.5 ? undefined : {
        start: slot * EPISODE_SLOT + random() * EPISODE_SLOT,
        rise: uniform(random, 20, 40) * MINUTE,
        plateau: uniform(random, 30, 90) * MINUTE,
        decay: uniform(random, 40, 80) * MINUTE,
        peak: uniform(random, 3, 9),
      });
    }
    return this.episodes.get(key);
  }

  private read(device: Device, timeMs: number): Reading {
    const fault = device.fault && timeMs >= device.fault.onset ? device.fault : undefined;
    const location = this.locations[device.location].name;
    if (fault?.kind === 'stuck') {
      device.frozen ??= device.last ?? this.measure(device, timeMs, undefined);
      return { ...device.frozen, time: new Date(timeMs).toISOString() };
    }
    const values = this.measure(device, timeMs, fault);
    device.last = values;
    return { ...values, time: new Date(timeMs).toISOString(), location };
  }

  private measure(device: Device, timeMs: number, fault: FaultTruth | undefined): Omit<Reading, 'time'> {
    const reading: Omit<Reading, 'time'> = { deviceId: device.deviceId, location: this.locations[device.location].name };
    for (const channel of CHANNELS) {
      let value = this.truth(device.location, timeMs, channel) * device.gain[channel] * (1 + this.noise * gaussian(device.random)) + NOISE_FLOOR[channel] * gaussian(device.random);
      if (fault?.kind === 'drift' && channel === 'pm25') value *= 1 + (DRIFT_PER_MINUTE * (timeMs - fault.onset)) / MINUTE;
      if (fault?.kind === 'spike' && (channel === 'pm25' || channel === 'pm10')) {
        // The first reading of a spiking sensor is a spike, so its onset is observable.
        if (!device.spiked || device.random() < SPIKE_PROBABILITY) value *= uniform(device.random, 4, 10);
      }
      const scale = 10 ** DECIMALS[channel];
      reading[channel] = Math.min(MAX_VALUE[channel], Math.max(0, Math.round(value * scale) / scale));
    }
    if (fault?.kind === 'spike') device.spiked = true;
    const hour = (timeMs % (24 * HOUR)) / HOUR;
    reading.temperature = Math.round((12 + 6 * Math.sin(((hour - 9) / 24) * 2 * Math.PI) + 0.3 * gaussian(device.random)) * 10) / 10;
    reading.humidity = Math.round(Math.min(100, Math.max(0, 60 - 15 * Math.sin(((hour - 9) / 24) * 2 * Math.PI) + gaussian(device.random))) * 10) / 10;
    return reading;
  }
}

// ---- a live run ------------------------------------------------------------------------------

/** Hands readings to a transport; rejects when they were not accepted. */
export type ReadingSender = (readings: Reading[]) => Promise<void>;

export interface SimulationProgress {
  sent: number;
  errors: number;
  /** Readings per second over the run so far. */
  rate: number;
  lastError?: string;
}

export interface SimulationRun {
  progress(): SimulationProgress;
  /** Stops generating; resolves once the sends in flight have settled. */
  stop(): Promise<void>;
}

export interface RunOptions {
  simulator: AirQualitySimulator;
  /** Readings per second, over all devices. */
  rate: number;
  send: ReadingSender;
  /** Most readings in one send (HTTP batches); 1 sends each on its own. */
  batchSize?: number;
  /** Sends in flight at once. */
  concurrency?: number;
  /** Stop after this many readings. */
  limit?: number;
  /** Called after each settled send. */
  onSettled?: (progress: SimulationProgress) => void;
}

/** Generates readings at `rate` per second, stamped with the wall clock, until stopped. */
export function runSimulation(options: RunOptions): SimulationRun {
  if (!(options.rate > 0)) throw new RangeError('rate must be a positive number of readings per second');
  const batchSize = options.batchSize ?? 500;
  const concurrency = options.concurrency ?? 4;
  const started = Date.now();
  let generated = 0;
  let sent = 0;
  let errors = 0;
  let lastError: string | undefined;
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  const progress = (): SimulationProgress => ({ sent, errors, rate: sent / Math.max(0.001, (Date.now() - started) / 1000), ...(lastError ? { lastError } : {}) });

  const tick = () => {
    if (stopped) return;
    const due = Math.min(Math.floor(((Date.now() - started) / 1000) * options.rate), options.limit ?? Infinity);
    while (generated < due && inFlight.size < concurrency) {
      const count = Math.min(batchSize, due - generated);
      const now = Date.now();
      const batch = Array.from({ length: count }, () => options.simulator.nextReading(now));
      generated += count;
      const sending = options.send(batch).then(
        () => void (sent += count),
        (error: unknown) => {
          errors += count;
          lastError = error instanceof Error ? error.message : String(error);
        },
      ).finally(() => {
        inFlight.delete(sending);
        options.onSettled?.(progress());
      });
      inFlight.add(sending);
    }
    if (options.limit !== undefined && generated >= options.limit) stopped = true;
  };
  const timer = setInterval(tick, Math.max(10, Math.min(200, 1000 / options.rate)));
  timer.unref?.();
  tick();
  return {
    progress,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all(inFlight);
    },
  };
}

/** POSTs batches to `<baseUrl>/readings` with the headers `headersFor(body)` gives (a key or a signature). */
export function httpSender(baseUrl: string, headersFor: (body: string) => Record<string, string>): ReadingSender {
  const url = new URL('/readings', baseUrl);
  return async (readings) => {
    const body = JSON.stringify(readings);
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headersFor(body) }, body });
    if (response.status === 202) return;
    const detail = (await response.json().catch(() => ({}))) as { error?: string };
    throw new Error(`POST /readings answered ${response.status}${detail.error ? `: ${detail.error}` : ''}`);
  };
}
