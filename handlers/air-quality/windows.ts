/**
 * Per location, in order (run by `assess`, partitionkey = location): event-time windows, and the
 * alerts computed from finalized minutes (category with hysteresis, sustained exceedance, sensor
 * drift).
 *
 * Each new reading updates its 1-minute window at once (provisional, `final: false`). A
 * minute is finalized when the location's watermark (the newest reading time seen, capped by its
 * ingest time so a fast device clock cannot race ahead) passes the minute's end plus the allowed
 * lateness; then its 5- and 60-minute sliding windows are stored and the alert rules run over it,
 * minute by minute in order. A reading for a finalized minute is too late: it stays in `readings`
 * but changes no window (counted in `tooLate`). So readings arriving in any order within the
 * lateness, or twice, give the same windows and the same alerts.
 *
 * A location that falls silent would never finalize its last minutes: the `tick` function sends
 * a per-minute tick, and a location silent (by the wall clock) for longer than the lateness moves
 * its watermark to now.
 */
import { fn, schedule, type Context, type Item } from '../../core/index.js';
import { ALERT_RAISED, alertRecord, anomalyDraft, evaluateMinute, newAlertState, suppressedByCooldown, type AlertDraft, type LocationAlertState } from './alerting.js';
import { detectDrift, newDriftState, peerRatios, type DriftState, type PollutantValues } from './anomaly.js';
import type { AirQualityConfig } from './config.js';
import { ALL } from './tables.js';
import { addValues, aqiOf, combineSums, iso, meansOf, MINUTE_MS, minuteOf, windowItem, windowKey, type Sums, type WindowSize } from './windowing.js';

export const LOCATION_TICK = 'aq.location.tick';

interface WindowState {
  location: string;
  /** Newest reading time seen, capped by ingest time (epoch ms). */
  watermark?: number;
  /** Earliest minute seen; where finalizing starts before any minute is final. */
  firstMinute?: number;
  /** Start of the last finalized minute. */
  finalizedThrough?: number;
  /** Wall-clock ingest time of the newest reading, for the idle tick. */
  lastIngest?: number;
  /** Readings that came after their minute was final. */
  tooLate: number;
  alert: LocationAlertState;
  [attribute: string]: unknown;
}

interface MinuteData {
  sums: Sums;
  readings: number;
}

interface DriftItem {
  location: string;
  deviceId: string;
  drift: DriftState;
  lastRaised: Record<string, number>;
  [attribute: string]: unknown;
}

/** What the windows read and write: the function that runs them (`assess`) is granted at least this. */
export const WINDOW_USES = { windows: 'write', windowState: 'write', alerts: 'write', locations: 'write', drift: 'write', deviceMinutes: 'write' } as const;
type WindowContext = Context<typeof WINDOW_USES>;

/** What moves a location's windows: a reading that changed what they count, or a tick of the wall clock. */
export type WindowInput =
  | {
      kind: 'reading';
      deviceId: string;
      /** Event time of the reading, and when it was ingested (epoch ms). */
      time: number;
      ingested: number;
      values: PollutantValues;
      /** The values this reading replaces (a correction of one already counted). */
      previous?: PollutantValues;
    }
  | { kind: 'tick'; now: number };

/** The data of `aq.location.tick`. */
export interface LocationTick {
  location: string;
  now: number;
}

/**
 * Updates a location's windows with a reading or a tick, finalizing the minutes its watermark has
 * passed and raising their alerts. Called in location order (by `assess`).
 */
export async function advanceWindows(ctx: WindowContext, location: string, input: WindowInput, config: AirQualityConfig): Promise<void> {
  const stored = (await ctx.tables.windowState.get({ location })) as WindowState | undefined;
  const state: WindowState = stored ?? { location, tooLate: 0, alert: newAlertState() };
  const entry = stored && JSON.stringify(locationEntry(stored));
  if (input.kind === 'tick') {
    if (state.lastIngest === undefined || input.now - state.lastIngest <= config.allowedLatenessMs) return;
    state.watermark = Math.max(state.watermark ?? 0, input.now);
  } else {
    state.lastIngest = Math.max(state.lastIngest ?? 0, input.ingested);
    const minute = minuteOf(input.time);
    if (state.finalizedThrough !== undefined && minute <= state.finalizedThrough) {
      state.tooLate++;
      await ctx.tables.windowState.put(state);
      await ctx.tables.locations.put(locationEntry(state));
      return;
    }
    state.firstMinute = Math.min(state.firstMinute ?? minute, minute);
    state.watermark = Math.max(state.watermark ?? 0, Math.min(input.time, input.ingested));
    await addToMinute(ctx, location, input.deviceId, minute, input.values, input.previous, config);
  }
  await finalize(ctx, state, config);
  await ctx.tables.windowState.put(state);
  if (JSON.stringify(locationEntry(state)) !== entry) await ctx.tables.locations.put(locationEntry(state));
}

/** Counts a reading (or a correction of one, given what it replaces) in its location's minute and its sensor's. */
async function addToMinute(ctx: WindowContext, location: string, deviceId: string, minute: number, values: PollutantValues, previous: PollutantValues | undefined, config: AirQualityConfig): Promise<void> {
  const stored = await ctx.tables.windows.get({ location, key: windowKey(1, minute) });
  const sums = (stored?.sums as Sums | undefined) ?? {};
  const readings = Number(stored?.readings ?? 0) + (previous ? 0 : 1);
  replaceValues(sums, values, previous);
  await ctx.tables.windows.put(windowItem(location, 1, minute, sums, readings, false, config.retentionMs));
  const key = deviceMinuteKey(minute, deviceId);
  const own = await ctx.tables.deviceMinutes.get({ location, key });
  const deviceSums = (own?.sums as Sums | undefined) ?? {};
  replaceValues(deviceSums, values, previous);
  await ctx.tables.deviceMinutes.put({ location, key, deviceId, sums: deviceSums, expires: Math.floor((minute + config.retentionMs) / 1000) });
}

function replaceValues(sums: Sums, values: PollutantValues, previous: PollutantValues | undefined): void {
  if (previous) addValues(sums, previous, -1);
  addValues(sums, values);
}

function deviceMinuteKey(minute: number, deviceId: string): string {
  return `${iso(minute)}#${deviceId}`;
}

/** Finalizes every minute the watermark has passed by the lateness, in order. */
async function finalize(ctx: WindowContext, state: WindowState, config: AirQualityConfig): Promise<void> {
  if (state.watermark === undefined) return;
  const target = minuteOf(state.watermark - config.allowedLatenessMs) - MINUTE_MS;
  const from = state.finalizedThrough !== undefined ? state.finalizedThrough + MINUTE_MS : state.firstMinute;
  if (from === undefined || target < from) return;
  const { location } = state;
  const stored = await ctx.tables.windows.query(location, { sortKey: { between: [windowKey(1, from - 59 * MINUTE_MS), windowKey(1, target)] } });
  const minutes = new Map<number, MinuteData>(stored.map((w) => [Date.parse(String(w.start)), { sums: w.sums as Sums, readings: Number(w.readings) }]));
  const withData = [...minutes.keys()].sort((a, b) => a - b);
  const drift = new DriftTracker(ctx, location, config);
  const drafts: AlertDraft[] = [];
  for (let minute = from; minute <= target; minute += MINUTE_MS) {
    // Nothing in the last hour: skip ahead to the next minute with readings (a silent stretch).
    if (!withData.some((m) => m <= minute && m > minute - 60 * MINUTE_MS)) {
      state.alert.streak = 0;
      const next = withData.find((m) => m > minute);
      if (next === undefined || next > target) break;
      minute = next;
    }
    const own = minutes.get(minute);
    const span = (size: WindowSize) => collect(minutes, minute - (size - 1) * MINUTE_MS, minute);
    const five = span(5);
    const hour = span(60);
    if (own) await ctx.tables.windows.put(windowItem(location, 1, minute, own.sums, own.readings, true, config.retentionMs));
    if (five.readings > 0) await ctx.tables.windows.put(windowItem(location, 5, minute - 4 * MINUTE_MS, five.sums, five.readings, true, config.retentionMs));
    if (hour.readings > 0) await ctx.tables.windows.put(windowItem(location, 60, minute - 59 * MINUTE_MS, hour.sums, hour.readings, true, config.retentionMs));
    drafts.push(...evaluateMinute(state.alert, minute, own && aqiOf(own.sums), five.readings > 0 ? aqiOf(five.sums) : undefined, config));
    if (own) drafts.push(...(await drift.minute(minute)));
  }
  state.finalizedThrough = target;
  await drift.save();
  for (const draft of drafts) {
    const alert = alertRecord(location, draft, config.retentionMs);
    await ctx.tables.alerts.put(alert);
    ctx.emit(ALERT_RAISED, alert, { subject: location, partitionkey: location });
  }
}

function collect(minutes: Map<number, MinuteData>, from: number, to: number): MinuteData {
  const parts: MinuteData[] = [];
  for (let m = from; m <= to; m += MINUTE_MS) {
    const data = minutes.get(m);
    if (data) parts.push(data);
  }
  return { sums: combineSums(parts.map((p) => p.sums)), readings: parts.reduce((n, p) => n + p.readings, 0) };
}

/**
 * Drift per sensor against its peers, one finalized minute at a time; state loaded once, saved
 * once. Each sensor's mean comes from its sums for the minute, kept as readings came: reading the
 * minute's readings back cost 2-3 us each, 12,000 a location-minute at 2,000 readings/s over 10
 * locations, and stalled every alert behind it for up to 0.66 s once a minute.
 */
class DriftTracker {
  private items?: Map<string, DriftItem>;
  private readonly changed = new Set<string>();

  constructor(private readonly ctx: WindowContext, private readonly location: string, private readonly config: AirQualityConfig) {}

  async minute(minute: number): Promise<AlertDraft[]> {
    const sensors = await this.ctx.tables.deviceMinutes.query(this.location, { sortKey: { beginsWith: deviceMinuteKey(minute, '') } });
    for (const sensor of sensors) await this.ctx.tables.deviceMinutes.delete({ location: this.location, key: sensor.key });
    const means = new Map(sensors.map((sensor) => [String(sensor.deviceId), meansOf(sensor.sums as Sums)]));
    if (means.size <= this.config.anomaly.driftMinPeers) return [];
    this.items ??= new Map((await this.ctx.tables.drift.query(this.location)).map((item) => [String(item.deviceId), item as DriftItem]));
    const drafts: AlertDraft[] = [];
    const time = minute + MINUTE_MS;
    for (const [deviceId, ratios] of peerRatios(means, this.config.anomaly.driftMinPeers)) {
      const item = this.items.get(deviceId) ?? { location: this.location, deviceId, drift: newDriftState(), lastRaised: {} };
      this.items.set(deviceId, item);
      this.changed.add(deviceId);
      for (const anomaly of detectDrift(item.drift, ratios, this.config.anomaly)) {
        const draft = anomalyDraft(deviceId, time, anomaly);
        if (!suppressedByCooldown(item.lastRaised, draft, this.config.cooldownMs)) drafts.push(draft);
      }
    }
    return drafts;
  }

  async save(): Promise<void> {
    for (const deviceId of this.changed) await this.ctx.tables.drift.put(this.items!.get(deviceId)!);
  }
}

/**
 * The location's entry in `locations` (what GET /locations and the tick list): written when it
 * first appears and when finalizing changes it, not per reading; the latest minute's AQI is read
 * from `windows` when asked for.
 */
function locationEntry(state: WindowState): Item {
  return {
    scope: ALL,
    location: state.location,
    ...(state.alert.level ? { alertLevel: state.alert.level } : {}),
    ...(state.finalizedThrough === undefined ? {} : { finalizedThrough: iso(state.finalizedThrough + MINUTE_MS) }),
    tooLate: state.tooLate,
  };
}

/** Once a minute: a tick per known location, so locations that fell silent finalize their windows. */
export function tick(config: AirQualityConfig) {
  return fn({
    trigger: schedule('rate(1 minute)'),
    uses: { locations: 'read' },
    emits: [LOCATION_TICK],
    handler: async (_event, ctx) => {
      const now = config.now();
      for (const entry of await ctx.tables.locations.query(ALL)) {
        const tick: LocationTick = { location: String(entry.location), now };
        ctx.emit(LOCATION_TICK, tick, { partitionkey: String(entry.location), subject: String(entry.location) });
      }
    },
  });
}
