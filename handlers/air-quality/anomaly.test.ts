import { describe, expect, it } from 'vitest';
import { detectDrift, detectReading, newDriftState, newSensorState, peerRatios, stuckRepeatsNeeded, type AnomalyKind, type PollutantValues } from './anomaly.js';
import { AirQualitySimulator } from './simulator.js';

const MINUTE = 60_000;

function values(reading: PollutantValues): PollutantValues {
  const { pm25, pm10, o3, no2, co } = reading;
  return { pm25, pm10, o3, no2, co };
}

/** A clean sensor: pm25 around `level` with 4% noise (deterministic). */
function cleanSeries(n: number, level = 20): number[] {
  let seed = 7;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  return Array.from({ length: n }, () => Math.round(level * (1 + 0.04 * (random() + random() + random() - 1.5) * 2) * 10) / 10);
}

describe('spikes', () => {
  it('flags a lone outlier once the sensor is back, at the outlier', () => {
    const state = newSensorState();
    const series = cleanSeries(60);
    series[40] = 120;
    const flagged: Array<{ at: number; time?: number }> = [];
    series.forEach((pm25, i) => {
      for (const a of detectReading(state, i * MINUTE, { pm25 }) ?? []) if (a.kind === 'spike') flagged.push({ at: i, time: a.time });
    });
    expect(flagged).toEqual([{ at: 41, time: 40 * MINUTE }]);
  });

  it('does not flag a rise that stays (the air changed, as when a plume arrives)', () => {
    const state = newSensorState();
    const series = [...cleanSeries(40), ...cleanSeries(40, 90)];
    const kinds = series.flatMap((pm25, i) => (detectReading(state, i * MINUTE, { pm25 }) ?? []).map((a) => a.kind));
    expect(kinds).toEqual([]);
  });

  it('does not flag during warm-up', () => {
    const state = newSensorState();
    const series = cleanSeries(10);
    series[5] = 300;
    expect(series.flatMap((pm25, i) => detectReading(state, i * MINUTE, { pm25 }) ?? [])).toEqual([]);
  });
});

describe('stuck sensors', () => {
  it('flags identical readings once the run is long enough for the channels reported', () => {
    expect(stuckRepeatsNeeded(5)).toBe(4);
    expect(stuckRepeatsNeeded(1)).toBe(20);
    const state = newSensorState();
    const clean = cleanSeries(30).map((pm25, i) => ({ pm25, pm10: pm25 * 2 + (i % 3), no2: 20 + (i % 5), o3: 0.03, co: 0.4 + (i % 4) / 100 }));
    const frozen = clean[29];
    const flags: number[] = [];
    [...clean, ...Array.from({ length: 10 }, () => frozen)].forEach((v, i) => {
      for (const a of detectReading(state, i * MINUTE, v) ?? []) if (a.kind === 'stuck') flags.push(i);
    });
    // Readings 30.. repeat reading 29: the fourth repeat (index 33) makes it stuck, flagged once.
    expect(flags).toEqual([33]);
  });

  it('flags a sensor stuck since before its warm-up ended, once warmed up, and again after it recovers and sticks anew', () => {
    const state = newSensorState();
    const flags: number[] = [];
    const frozen = { pm25: 9.9, pm10: 20.1, no2: 14, o3: 0.02, co: 0.31 };
    const moving = cleanSeries(10).map((pm25) => ({ ...frozen, pm25 }));
    [...moving.slice(0, 5), ...Array.from({ length: 25 }, () => frozen), ...moving, ...Array.from({ length: 6 }, () => frozen)].forEach((v, i) => {
      for (const a of detectReading(state, i * MINUTE, v) ?? []) if (a.kind === 'stuck') flags.push(i);
    });
    // Warm-up ends with reading 21 (index 20); the second run of repeats begins at index 40.
    expect(flags).toEqual([20, 44]);
  });
});

describe('duplicates and order', () => {
  it('skips a reading not newer than the last, leaving the state unchanged', () => {
    const state = newSensorState();
    cleanSeries(30).forEach((pm25, i) => detectReading(state, i * MINUTE, { pm25 }));
    const before = JSON.stringify(state);
    expect(detectReading(state, 29 * MINUTE, { pm25: 500 })).toBeUndefined();
    expect(detectReading(state, 10 * MINUTE, { pm25: 500 })).toBeUndefined();
    expect(JSON.stringify(state)).toBe(before);
  });
});

describe('drift against peers', () => {
  it('flags a sensor whose gain drifts while its peers stay put, and not the peers', () => {
    const states = new Map<string, ReturnType<typeof newDriftState>>();
    const flagged: Array<[string, number]> = [];
    const level = cleanSeries(120, 30);
    for (let minute = 0; minute < 120; minute++) {
      const means = new Map<string, PollutantValues>();
      for (let d = 0; d < 6; d++) {
        const noise = cleanSeries(120 + d, 1)[minute + d];
        const gain = d === 0 && minute >= 60 ? 1 + 0.03 * (minute - 60) : 1;
        means.set(`d${d}`, { pm25: level[minute] * noise * gain });
      }
      for (const [device, ratios] of peerRatios(means, 3)) {
        const state = states.get(device) ?? newDriftState();
        states.set(device, state);
        for (const a of detectDrift(state, ratios)) if (a.kind === 'drift') flagged.push([device, minute]);
      }
    }
    expect(flagged.map(([device]) => device)).toEqual(['d0']);
    expect(flagged[0][1]).toBeGreaterThan(60);
    expect(flagged[0][1]).toBeLessThan(75);
  });

  it('needs enough peers', () => {
    const ratios = peerRatios(new Map([['a', { pm25: 10 }], ['b', { pm25: 11 }], ['c', { pm25: 12 }]]), 3);
    expect([...ratios.values()].every((r) => r.pm25 === undefined)).toBe(true);
  });
});

describe('fault injection: the simulator\'s faulty sensors against the detector', () => {
  // 200 sensors in 10 locations, one reading a minute each for 135 minutes from 04:00 (pollution
  // episodes included); 10 sensors of each fault kind go bad at a random time between 60 and 100
  // minutes in. The same code paths as the app: spikes and stuck
  // values per reading in time order, drift per minute against the location's peers.
  it('flags every injected fault within a few readings, and under 1% of clean sensors falsely', () => {
    const start = Date.UTC(2026, 10, 27, 4, 0);
    const simulator = new AirQualitySimulator({ devices: 200, locations: 10, seed: 11, faults: { stuck: 10, spike: 10, drift: 10 }, faultWindow: [start + 60 * MINUTE, start + 100 * MINUTE] });
    const faults = new Map(simulator.faults().map((f) => [f.deviceId, f]));
    const sensors = new Map<string, ReturnType<typeof newSensorState>>();
    const drift = new Map<string, ReturnType<typeof newDriftState>>();
    /** Per device: readings since its fault began, and the first flag of each kind (as that count). */
    const sinceOnset = new Map<string, number>();
    const flags = new Map<string, Array<{ kind: AnomalyKind; time: number; reading: number }>>();
    const flag = (deviceId: string, kind: AnomalyKind, time: number) => {
      const list = flags.get(deviceId) ?? [];
      flags.set(deviceId, list);
      list.push({ kind, time, reading: sinceOnset.get(deviceId) ?? 0 });
    };
    for (let t = start; t < start + 135 * MINUTE; t += MINUTE) {
      const byLocation = new Map<string, Map<string, PollutantValues>>();
      for (const reading of simulator.readingsAt(t)) {
        const fault = faults.get(reading.deviceId);
        if (fault && t >= fault.onset) sinceOnset.set(reading.deviceId, (sinceOnset.get(reading.deviceId) ?? 0) + 1);
        const state = sensors.get(reading.deviceId) ?? newSensorState();
        sensors.set(reading.deviceId, state);
        for (const a of detectReading(state, t, values(reading)) ?? []) flag(reading.deviceId, a.kind, a.time ?? t);
        const location = byLocation.get(reading.location) ?? new Map<string, PollutantValues>();
        byLocation.set(reading.location, location);
        location.set(reading.deviceId, values(reading));
      }
      for (const means of byLocation.values()) {
        for (const [deviceId, ratios] of peerRatios(means, 3)) {
          const state = drift.get(deviceId) ?? newDriftState();
          drift.set(deviceId, state);
          for (const a of detectDrift(state, ratios)) flag(deviceId, a.kind, t + MINUTE);
        }
      }
    }

    const delays: Record<AnomalyKind, number[]> = { spike: [], stuck: [], drift: [] };
    const missed: string[] = [];
    for (const fault of faults.values()) {
      const hit = flags.get(fault.deviceId)?.find((f) => f.kind === fault.kind && f.time >= fault.onset);
      if (hit) delays[fault.kind].push(hit.reading);
      else missed.push(`${fault.deviceId} (${fault.kind})`);
    }
    const clean = simulator.deviceIds.filter((id) => !faults.has(id));
    const falselyFlagged = clean.filter((id) => flags.has(id));
    const flaggedBeforeOnset = [...faults.values()].filter((f) => flags.get(f.deviceId)?.some((x) => x.time < f.onset)).map((f) => f.deviceId);
    const summary = (xs: number[]) => `median ${[...xs].sort((a, b) => a - b)[xs.length >> 1]}, max ${Math.max(...xs)}`;
    console.log(
      [
        'fault injection (200 sensors, 10 locations, 1 reading/min for 135 min, 10 faults of each kind):',
        `  detection delay in readings after onset (reading 1 = the first faulty one): spike ${summary(delays.spike)}; stuck ${summary(delays.stuck)}; drift (+3%/min PM2.5 gain) ${summary(delays.drift)}`,
        `  false positives: ${falselyFlagged.length} of ${clean.length} clean sensors (${((100 * falselyFlagged.length) / clean.length).toFixed(2)}%); faulty sensors flagged before their fault: ${flaggedBeforeOnset.length}`,
      ].join('\n'),
    );

    expect(missed).toEqual([]);
    expect(Math.max(...delays.spike)).toBeLessThanOrEqual(4);
    expect(Math.max(...delays.stuck)).toBeLessThanOrEqual(5);
    expect(Math.max(...delays.drift)).toBeLessThanOrEqual(20);
    expect(falselyFlagged.length / clean.length).toBeLessThan(0.01);
    expect(flaggedBeforeOnset).toEqual([]);
  });
});
