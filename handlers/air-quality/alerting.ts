/**
 * Alert rules over finalized minutes of a location, and the alert record every kind shares.
 *
 * - category: the AQI category of the 5-minute average, with hysteresis: it rises as soon as the
 *   AQI reaches a higher category, and falls only once the AQI is `hysteresisAqi` below the floor
 *   of the current one, so a value wavering at a boundary raises one alert, not one per wobble.
 *   Changes touching "Unhealthy for Sensitive Groups" or worse raise an alert, up and down.
 * - sustained: the 1-minute AQI at or above `sustainedAqi` for `sustainedMinutes` minutes in a
 *   row (a minute without readings breaks the run), once per run.
 * Every alert has a dedupe key; the same key within `cooldownMs` (event time) is not raised again.
 */
import { ALERT_LEVEL, category, type AqiLevel, type AqiResult } from './aqi.js';
import type { Anomaly } from './anomaly.js';
import type { AlertKind } from './config.js';
import { iso, MINUTE_MS } from './windowing.js';

export const ALERT_RAISED = 'aq.alert.raised';

/** Category floors by level (AQI). */
const FLOOR: Record<AqiLevel, number> = { 1: 0, 2: 51, 3: 101, 4: 151, 5: 201, 6: 301 };

export interface AlertRules {
  hysteresisAqi: number;
  sustainedMinutes: number;
  sustainedAqi: number;
  cooldownMs: number;
}

/** A location's alert state (JSON, kept with its window state). */
export interface LocationAlertState {
  /** The category level the hysteresis holds; undefined before the first 5-minute average. */
  level?: AqiLevel;
  /** Consecutive finalized minutes at or above sustainedAqi, and when the run began. */
  streak: number;
  streakStart?: number;
  /** Event time (epoch ms) each dedupe key was last raised. */
  lastRaised: Record<string, number>;
}

export function newAlertState(): LocationAlertState {
  return { streak: 0, lastRaised: {} };
}

/** What a rule found, before it becomes a stored alert. */
export interface AlertDraft {
  kind: AlertKind;
  /** Event time the alert is about (epoch ms). */
  time: number;
  dedupeKey: string;
  fields: Record<string, unknown>;
  message: string;
}

/** The category level the hysteresis gives for `aqi` when the held level is `held`. */
export function nextLevel(held: AqiLevel | undefined, aqi: number, hysteresisAqi: number): AqiLevel {
  const plain = category(aqi).level;
  if (held === undefined || plain >= held) return plain;
  // Falling: only as far as the AQI is clear of each floor by the margin.
  let level = held;
  while (level > plain && aqi < FLOOR[level] - hysteresisAqi) level = (level - 1) as AqiLevel;
  return level;
}

/** True when `draft`'s dedupe key was raised within the cooldown; otherwise records it as raised now. */
export function suppressedByCooldown(lastRaised: Record<string, number>, draft: AlertDraft, cooldownMs: number): boolean {
  const last = lastRaised[draft.dedupeKey];
  if (last !== undefined && draft.time - last < cooldownMs && draft.time >= last) return true;
  lastRaised[draft.dedupeKey] = draft.time;
  return false;
}

/**
 * One finalized minute of a location: `minute` is its start; `minuteAqi` the AQI of its own
 * readings, `fiveMinuteAqi` that of the five minutes ending with it (undefined: no readings).
 * Updates `state`; returns the alerts to raise.
 */
export function evaluateMinute(state: LocationAlertState, minute: number, minuteAqi: AqiResult | undefined, fiveMinuteAqi: AqiResult | undefined, rules: AlertRules): AlertDraft[] {
  const end = minute + MINUTE_MS;
  const drafts: AlertDraft[] = [];
  if (fiveMinuteAqi) {
    const previous = state.level;
    const level = nextLevel(previous, fiveMinuteAqi.aqi, rules.hysteresisAqi);
    state.level = level;
    if (level !== previous && Math.max(level, previous ?? 1) >= ALERT_LEVEL) {
      const direction = previous === undefined || level > previous ? 'up' : 'down';
      const now = category(FLOOR[level]);
      drafts.push({
        kind: 'category',
        time: end,
        dedupeKey: `category:${direction}:${level}`,
        fields: {
          direction,
          level,
          category: now.name,
          color: now.color,
          ...(previous ? { previousCategory: category(FLOOR[previous]).name } : {}),
          aqi: fiveMinuteAqi.aqi,
          pollutant: fiveMinuteAqi.pollutant,
          window: '5m',
        },
        message: `5-minute AQI ${fiveMinuteAqi.aqi}: ${direction === 'up' ? 'rose to' : 'fell to'} ${now.name}`,
      });
    }
  }
  if (minuteAqi && minuteAqi.aqi >= rules.sustainedAqi) {
    if (state.streak === 0) state.streakStart = minute;
    state.streak++;
    if (state.streak === rules.sustainedMinutes) {
      drafts.push({
        kind: 'sustained',
        time: end,
        dedupeKey: 'sustained',
        fields: { aqi: minuteAqi.aqi, category: minuteAqi.category.name, color: minuteAqi.category.color, pollutant: minuteAqi.pollutant, minutes: state.streak, since: iso(state.streakStart!) },
        message: `AQI at or above ${rules.sustainedAqi} for ${state.streak} minutes (now ${minuteAqi.aqi}, ${minuteAqi.category.name})`,
      });
    }
  } else {
    state.streak = 0;
    delete state.streakStart;
  }
  return drafts.filter((draft) => !suppressedByCooldown(state.lastRaised, draft, rules.cooldownMs));
}

/** An anomaly of one sensor as an alert draft (the caller applies the cooldown). */
export function anomalyDraft(deviceId: string, time: number, anomaly: Anomaly): AlertDraft {
  const what = anomaly.kind === 'stuck' ? `the same values ${anomaly.score + 1} readings in a row`
    : anomaly.kind === 'spike' ? `${anomaly.pollutant} ${anomaly.value} where about ${anomaly.expected} was expected (robust z ${anomaly.score})`
      : `${anomaly.pollutant} drifting from its peers: ${anomaly.value} where about ${anomaly.expected} was expected (z ${anomaly.score})`;
  return {
    kind: 'anomaly',
    time,
    dedupeKey: `anomaly:${deviceId}:${anomaly.kind}:${anomaly.pollutant ?? 'all'}`,
    fields: { deviceId, anomaly: anomaly.kind, ...(anomaly.pollutant ? { pollutant: anomaly.pollutant } : {}), ...(anomaly.value !== undefined ? { value: anomaly.value, expected: anomaly.expected } : {}), score: anomaly.score },
    message: `sensor ${deviceId}: ${anomaly.kind}: ${what}`,
  };
}

/** A stored alert (the `alerts` table item, and the `aq.alert.raised` data). */
export interface AlertRecord {
  location: string;
  /** Sort key and id: event time, kind, and what it is about; the same alert always gets the same key. */
  key: string;
  kind: AlertKind;
  time: string;
  message: string;
  expires: number;
  [field: string]: unknown;
}

export function alertRecord(location: string, draft: AlertDraft, retentionMs: number): AlertRecord {
  return {
    location,
    key: `${iso(draft.time)}#${draft.dedupeKey}`,
    kind: draft.kind,
    time: iso(draft.time),
    ...draft.fields,
    message: draft.message,
    expires: Math.floor((draft.time + retentionMs) / 1000),
  };
}
