import { describe, expect, it } from 'vitest';
import { alertRecord, anomalyDraft, evaluateMinute, newAlertState, nextLevel, type AlertRules } from './alerting.js';
import { computeAqi, type AqiResult } from './aqi.js';

const MINUTE = 60_000;
const rules: AlertRules = { hysteresisAqi: 10, sustainedMinutes: 5, sustainedAqi: 101, cooldownMs: 30 * MINUTE };

/** The AQI result for a PM2.5 concentration. */
function pm(pm25: number): AqiResult {
  return computeAqi({ pm25 })!;
}

/** PM2.5 giving exactly these AQI values: 35.4 -> 100, 35.5 -> 101 (33.5 -> 96, 30 -> 90). */
const AT_100 = 35.4;
const AT_101 = 35.5;

function run(fiveMinute: number[], minute: number[] = fiveMinute, options = rules) {
  const state = newAlertState();
  const drafts = fiveMinute.flatMap((value, i) => evaluateMinute(state, i * MINUTE, pm(minute[i]), pm(value), options));
  return { state, drafts };
}

describe('category with hysteresis', () => {
  it('raises one alert for a value wavering across a category boundary, not one per crossing', () => {
    const wavering = Array.from({ length: 40 }, (_, i) => (i % 2 ? AT_100 : AT_101));
    const { drafts } = run([20, 20, ...wavering], Array(42).fill(20));
    expect(drafts.map((d) => [d.kind, d.fields.direction, d.fields.category])).toEqual([['category', 'up', 'Unhealthy for Sensitive Groups']]);
  });

  it('without hysteresis (and cooldown) the same values would flap on every crossing', () => {
    const wavering = Array.from({ length: 10 }, (_, i) => (i % 2 ? AT_100 : AT_101));
    const { drafts } = run(wavering, Array(10).fill(20), { ...rules, hysteresisAqi: 0, cooldownMs: 0 });
    expect(drafts.length).toBe(10);
  });

  it('falls only once the AQI is the margin below the floor, and says so', () => {
    // 101 (USG) -> 95 (within 10 of the floor 101: holds) -> 90 (clear: Moderate).
    expect(nextLevel(3, 95, 10)).toBe(3);
    expect(nextLevel(3, 90, 10)).toBe(2);
    expect(nextLevel(5, 140, 10)).toBe(3);
    expect(nextLevel(2, 160, 10)).toBe(4);
    const { drafts } = run([AT_101, 33.5, 30], Array(3).fill(20));
    expect(drafts.map((d) => [d.fields.direction, d.fields.category, d.fields.previousCategory])).toEqual([
      ['up', 'Unhealthy for Sensitive Groups', undefined],
      ['down', 'Moderate', 'Unhealthy for Sensitive Groups'],
    ]);
  });

  it('does not alert on changes below the alert level', () => {
    expect(run([5, 20, 5, 20], Array(4).fill(5)).drafts).toEqual([]);
  });

  it('suppresses the same change again within the cooldown (event time), and allows it after', () => {
    const episode = [60, 60, 20, 20];
    const quick = run([...episode, ...episode], Array(8).fill(20));
    expect(quick.drafts.map((d) => d.fields.direction)).toEqual(['up', 'down']);
    const gap = Array(31).fill(20);
    const later = run([...episode, ...gap, ...episode], Array(39).fill(20));
    expect(later.drafts.map((d) => d.fields.direction)).toEqual(['up', 'down', 'up', 'down']);
  });
});

describe('sustained exceedance', () => {
  it('raises once when the 1-minute AQI stays at or above the bound for N minutes', () => {
    const minutes = [20, 40, 40, 40, 40, 40, 40, 40, 20];
    const { drafts } = run(Array(9).fill(20), minutes);
    expect(drafts.map((d) => [d.kind, d.fields.minutes, d.time])).toEqual([['sustained', 5, 6 * MINUTE]]);
    expect(drafts[0].fields.since).toBe(new Date(1 * MINUTE).toISOString());
  });

  it('starts over after a minute below the bound', () => {
    const { drafts } = run(Array(9).fill(20), [40, 40, 40, 40, 20, 40, 40, 40, 40]);
    expect(drafts).toEqual([]);
  });
});

describe('records', () => {
  it('keys an alert by event time and dedupe key, so the same alert always lands on the same item', () => {
    const draft = anomalyDraft('d-1', Date.UTC(2026, 10, 28, 10, 0), { kind: 'spike', pollutant: 'pm25', value: 99, expected: 10, score: 30 });
    const record = alertRecord('harbour', draft, 7 * 86_400_000);
    expect(record).toMatchObject({ location: 'harbour', key: '2026-11-28T10:00:00.000Z#anomaly:d-1:spike:pm25', kind: 'anomaly', deviceId: 'd-1', anomaly: 'spike', pollutant: 'pm25', value: 99 });
    expect(record.message).toMatch(/sensor d-1: spike: pm25 99 where about 10 was expected/);
    expect(alertRecord('harbour', draft, 7 * 86_400_000)).toEqual(record);
  });
});
