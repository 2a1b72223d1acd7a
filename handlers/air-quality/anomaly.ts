/**
 * Streaming anomaly detection per sensor: spikes, stuck values and drift.
 *
 * Values are compared in log space, ln(x + floor), so one threshold fits clean air and smog alike:
 * sensor noise and sensor gain are roughly proportional to the level, and the floor keeps values
 * near zero from looking noisy.
 *
 * - Spike: the reading against the sensor's own EWMA level (with Holt's trend, so a steady rise
 *   is expected), scaled by the median absolute deviation (MAD) of its recent residuals: a robust
 *   z-score that one outlier cannot inflate. An outlier is a spike once the sensor is back near
 *   its level within a few readings; if it stays away, the air itself changed (a plume), and the
 *   level follows.
 * - Stuck: the same value on every reported pollutant for several readings in a row; real sensor
 *   noise makes that vanishingly rare (the run needed shrinks as more channels repeat together).
 * - Drift: a sensor against its peers at the same location, once per finalized minute: the log
 *   ratio of its minute mean to the peers' median. Peers share the weather and the pollution, so
 *   the ratio is stable (the sensor's gain); the median of its last few minutes leaving a slow
 *   EWMA baseline by more than the threshold (again MAD-scaled) is drift. The median shrugs off
 *   a single wild minute. A sensor alone cannot tell drift from a real trend.
 */
import { POLLUTANTS, type Pollutant } from './aqi.js';

export type AnomalyKind = 'spike' | 'stuck' | 'drift';

export interface Anomaly {
  kind: AnomalyKind;
  /** The pollutant that showed it; undefined for a stuck sensor (every channel). */
  pollutant?: Pollutant;
  value?: number;
  /** What the detector expected instead. */
  expected?: number;
  /** The robust z-score, or the run length for a stuck sensor. */
  score: number;
  /** When it happened, if not at the reading that revealed it (a spike is confirmed one reading later). */
  time?: number;
}

export interface AnomalyOptions {
  /** Weight of a new reading in a sensor's EWMA level. */
  levelAlpha: number;
  /** Weight of a level change in the level's trend. */
  trendBeta: number;
  /** Recent residuals kept per channel for the MAD. */
  madWindow: number;
  /** Readings a channel needs before it may be flagged. */
  warmup: number;
  /** Robust z-score above which a reading is a spike, if the sensor is back within... */
  spikeZ: number;
  /** ...this many readings (from the first outlier on). */
  spikeReadings: number;
  /** Floor of a robust scale in log units (about a 2% relative change): quantized or quiet sensors. */
  minScale: number;
  /** Repeated channel values (channels x readings in a row) that mean a stuck sensor. */
  stuckChannelRepeats: number;
  /** ...but never fewer than this many repeats. */
  minStuckRepeats: number;
  /** Minutes in the recent median compared with the baseline. */
  driftRecent: number;
  driftSlowAlpha: number;
  /** Minutes of peer comparison before drift may be flagged. */
  driftWarmup: number;
  driftZ: number;
  /** Least shift of the log ratio that counts as drift (0.1: about 10%), however quiet the sensor. */
  driftMinShift: number;
  /** Peers a location needs (besides the sensor) for a drift comparison. */
  driftMinPeers: number;
}

export const DEFAULT_ANOMALY_OPTIONS: AnomalyOptions = {
  levelAlpha: 0.3,
  trendBeta: 0.3,
  madWindow: 40,
  warmup: 20,
  spikeZ: 10,
  spikeReadings: 3,
  minScale: 0.02,
  stuckChannelRepeats: 20,
  minStuckRepeats: 3,
  driftRecent: 5,
  driftSlowAlpha: 0.02,
  driftWarmup: 30,
  driftZ: 6,
  driftMinShift: 0.1,
  driftMinPeers: 3,
};

/** Added before taking logs: about a clean-air level of each pollutant, in its units. */
const LOG_FLOOR: Record<Pollutant, number> = { pm25: 5, pm10: 10, o3: 0.02, no2: 10, co: 0.3 };

const toLog = (p: Pollutant, x: number) => Math.log(x + LOG_FLOOR[p]);
const fromLog = (p: Pollutant, y: number) => Math.max(0, Math.exp(y) - LOG_FLOOR[p]);
/** MAD to standard deviation, for normal noise. */
const MAD_TO_SIGMA = 1.4826;

export function median(values: ArrayLike<number>): number {
  // A typed array sorts numerically without a comparator: several times faster on hot paths.
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The median of recent values and their robust scale (MAD as a standard deviation, at least `floor`). */
function robustCenterScale(values: readonly number[], floor: number): [center: number, scale: number] {
  if (values.length === 0) return [0, floor];
  const center = median(values);
  if (values.length < 3) return [center, floor];
  return [center, Math.max(floor, MAD_TO_SIGMA * median(values.map((v) => Math.abs(v - center))))];
}

/**
 * A residual as kept in the state: to 4 decimals of a log ratio, far below the 0.02 floor of the
 * scale they give. The state is parsed and written as JSON with every reading, and 17-digit
 * doubles made that three times the work.
 */
function quantize(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

function pushBounded(list: number[], value: number, max: number): void {
  list.push(value);
  if (list.length > max) list.splice(0, list.length - max);
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

// ---- spikes and stuck values: per reading --------------------------------------------------

interface LevelChannel {
  n: number;
  level: number;
  /** Change of the level per reading (Holt's linear trend), so a steady rise is not a surprise. */
  trend: number;
  residuals: number[];
  /** An outlier waiting for the sensor to come back (a spike) or not (the air changed). */
  candidate?: { time: number; value: number; expected: number; z: number; readings: number };
}

/** A sensor's detector state (JSON, stored per device). */
export interface SensorState {
  /** Time (epoch ms) of the last reading fed in; older or equal readings are skipped. */
  lastTime?: number;
  channels: Partial<Record<Pollutant, LevelChannel>>;
  /** The last reading's pollutant values, and how many readings in a row repeated them. */
  lastValues?: string;
  repeats: number;
  /** This run of repeats was flagged already. */
  stuck?: boolean;
}

export function newSensorState(): SensorState {
  return { channels: {}, repeats: 0 };
}

export type PollutantValues = Partial<Record<Pollutant, number>>;

/** The pollutant values present in a reading or a stored item. */
export function pollutantValues(item: Record<string, unknown>): PollutantValues {
  const values: PollutantValues = {};
  for (const p of POLLUTANTS) if (typeof item[p] === 'number') values[p] = item[p];
  return values;
}

/**
 * Feeds one reading (in time order) into a sensor's state. Returns undefined for a reading not
 * newer than the last one fed in (a duplicate or out of order: the state is a function of the
 * sequence, so it is left as it was), else the anomalies this reading reveals. A spike is
 * revealed by a later reading, back near the level: a plume reaching the whole location stays
 * up, and is no spike.
 */
export function detectReading(state: SensorState, timeMs: number, values: PollutantValues, options: AnomalyOptions = DEFAULT_ANOMALY_OPTIONS): Anomaly[] | undefined {
  if (state.lastTime !== undefined && timeMs <= state.lastTime) return undefined;
  state.lastTime = timeMs;
  const anomalies: Anomaly[] = [];
  const present = POLLUTANTS.filter((p) => values[p] !== undefined);
  let warmedUp = present.length > 0;
  for (const p of present) {
    const x = values[p]!;
    const y = toLog(p, x);
    const channel = state.channels[p];
    if (!channel) {
      state.channels[p] = { n: 1, level: y, trend: 0, residuals: [] };
      warmedUp = false;
      continue;
    }
    channel.n++;
    if (channel.n <= options.warmup) warmedUp = false;
    const candidate = channel.candidate;
    // The level skipped the readings of a candidate, so it is that many steps further ahead.
    const predicted = channel.level + channel.trend * (1 + (candidate?.readings ?? 0));
    const residual = y - predicted;
    const [center, scale] = robustCenterScale(channel.residuals, options.minScale);
    const z = (residual - center) / scale;
    if (candidate) {
      if (Math.abs(z) > options.spikeZ / 2) {
        if (candidate.readings < options.spikeReadings) candidate.readings++;
        else {
          // Not back: the air changed (a plume arriving, a step), so the level follows it.
          delete channel.candidate;
          channel.level = y;
        }
        continue;
      }
      delete channel.candidate;
      anomalies.push({ kind: 'spike', pollutant: p, value: candidate.value, expected: candidate.expected, score: candidate.z, time: candidate.time });
    } else if (channel.n > options.warmup && Math.abs(z) > options.spikeZ) {
      channel.candidate = { time: timeMs, value: x, expected: round(fromLog(p, predicted)), z: round(z), readings: 1 };
      continue;
    }
    const correction = options.levelAlpha * residual;
    channel.level = predicted + correction;
    channel.trend += options.trendBeta * correction;
    pushBounded(channel.residuals, quantize(residual), options.madWindow);
  }
  const signature = JSON.stringify(present.map((p) => values[p]));
  state.repeats = signature === state.lastValues ? state.repeats + 1 : 0;
  state.lastValues = signature;
  if (state.repeats === 0) delete state.stuck;
  // Flag once per run, as soon as it is long enough and the sensor is past its warm-up.
  if (warmedUp && !state.stuck && state.repeats >= stuckRepeatsNeeded(present.length, options)) {
    state.stuck = true;
    anomalies.push({ kind: 'stuck', score: state.repeats });
  }
  return anomalies;
}

export function stuckRepeatsNeeded(channels: number, options: AnomalyOptions = DEFAULT_ANOMALY_OPTIONS): number {
  return Math.max(options.minStuckRepeats, Math.ceil(options.stuckChannelRepeats / Math.max(1, channels)));
}

// ---- drift: per finalized minute, against peers ------------------------------------------

interface DriftChannel {
  n: number;
  slow: number;
  recent: number[];
  deviations: number[];
  drifting: boolean;
}

/** A sensor's drift state at one location (JSON, stored per location and device). */
export interface DriftState {
  channels: Partial<Record<Pollutant, DriftChannel>>;
}

export function newDriftState(): DriftState {
  return { channels: {} };
}

/** Per device, per pollutant: ln((own + floor) / (median of peers + floor)), with the peer median. */
export function peerRatios(deviceMeans: ReadonlyMap<string, PollutantValues>, minPeers: number): Map<string, Partial<Record<Pollutant, { ratio: number; peers: number }>>> {
  const result = new Map<string, Partial<Record<Pollutant, { ratio: number; peers: number }>>>();
  for (const [device, own] of deviceMeans) {
    const ratios: Partial<Record<Pollutant, { ratio: number; peers: number }>> = {};
    for (const p of POLLUTANTS) {
      if (own[p] === undefined) continue;
      const peers: number[] = [];
      for (const [other, values] of deviceMeans) if (other !== device && values[p] !== undefined) peers.push(values[p]!);
      if (peers.length < minPeers) continue;
      const peerMedian = median(peers);
      ratios[p] = { ratio: toLog(p, own[p]!) - toLog(p, peerMedian), peers: peerMedian };
    }
    result.set(device, ratios);
  }
  return result;
}

/** Feeds one finalized minute's peer ratios into a sensor's drift state; returns the drift it shows. */
export function detectDrift(state: DriftState, ratios: Partial<Record<Pollutant, { ratio: number; peers: number }>>, options: AnomalyOptions = DEFAULT_ANOMALY_OPTIONS): Anomaly[] {
  const anomalies: Anomaly[] = [];
  for (const p of POLLUTANTS) {
    const input = ratios[p];
    if (!input) continue;
    const r = input.ratio;
    const channel = state.channels[p];
    if (!channel) {
      state.channels[p] = { n: 1, slow: r, recent: [r], deviations: [], drifting: false };
      continue;
    }
    const [, scale] = robustCenterScale(channel.deviations, options.minScale);
    pushBounded(channel.recent, r, options.driftRecent);
    const shift = median(channel.recent) - channel.slow;
    // The median of n independent normal values has about sigma * sqrt(pi / 2n).
    const z = shift / (scale * Math.sqrt(Math.PI / (2 * channel.recent.length)));
    const drifting = channel.n >= options.driftWarmup && Math.abs(z) > options.driftZ && Math.abs(shift) > options.driftMinShift;
    if (drifting && !channel.drifting) {
      const expected = fromLog(p, toLog(p, input.peers) + channel.slow);
      anomalies.push({ kind: 'drift', pollutant: p, value: round(fromLog(p, toLog(p, input.peers) + r)), expected: round(expected), score: round(z) });
    }
    // Past half the threshold the baseline and the scale hold still, so a slow drift cannot
    // teach them that it is normal; once drifting, they stay held until the sensor is back.
    const suspicious = channel.n >= options.driftWarmup && Math.abs(z) > options.driftZ / 2;
    channel.drifting = drifting || (channel.drifting && suspicious);
    if (!suspicious) {
      // A plain mean while warming up, so the baseline does not lean on the first minutes; then
      // a slow EWMA that one wild minute moves by a bounded step only.
      const warm = channel.n >= options.driftWarmup;
      const bounded = warm ? clamp(r, channel.slow - 3 * scale, channel.slow + 3 * scale) : r;
      channel.slow += Math.max(options.driftSlowAlpha, 1 / (channel.n + 1)) * (bounded - channel.slow);
      pushBounded(channel.deviations, quantize(r - channel.slow), options.madWindow);
    }
    channel.n++;
  }
  return anomalies;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
