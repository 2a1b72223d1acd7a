import { afterEach, describe, expect, it } from 'vitest';
import { parseReadings } from './reading.js';
import { AirQualitySimulator, runSimulation, type SimulationRun } from './simulator.js';

const START = Date.UTC(2026, 10, 28, 6, 0);
const MINUTE = 60_000;

describe('simulated city', () => {
  it('is the same for the same seed, and different for another', () => {
    const a = new AirQualitySimulator({ devices: 12, locations: 3, seed: 5 });
    const b = new AirQualitySimulator({ devices: 12, locations: 3, seed: 5 });
    const c = new AirQualitySimulator({ devices: 12, locations: 3, seed: 6 });
    const take = (s: AirQualitySimulator) => [0, 1, 2].flatMap((i) => s.readingsAt(START + i * MINUTE));
    expect(take(a)).toEqual(take(b));
    expect(take(a)).not.toEqual(take(c));
  });

  it('produces valid readings spread over the locations', () => {
    const simulator = new AirQualitySimulator({ devices: 10, locations: 4, seed: 1 });
    const readings = simulator.readingsAt(START);
    expect(parseReadings(readings).ok).toBe(true);
    expect(new Set(readings.map((r) => r.location))).toEqual(new Set(['harbour', 'downtown', 'old-town', 'university']));
    expect(new Set(readings.map((r) => r.deviceId)).size).toBe(10);
  });

  it('follows a diurnal cycle: more NO2 in the morning rush than at night, ozone in the afternoon', () => {
    const simulator = new AirQualitySimulator({ devices: 4, locations: 1, seed: 2 });
    // Over 30 days, so that pollution episodes (at random hours) average out.
    const at = (hour: number) => Array.from({ length: 30 }, (_, day) => simulator.truth(0, Date.UTC(2026, 9, 1 + day, hour, 0), 'no2')).reduce((a, b) => a + b);
    expect(at(8)).toBeGreaterThan(1.5 * at(2));
    expect(simulator.truth(0, Date.UTC(2026, 10, 28, 15, 0), 'o3')).toBeGreaterThan(1.5 * simulator.truth(0, Date.UTC(2026, 10, 28, 3, 0), 'o3'));
  });

  it('injects the faults it reports: stuck, spiking and drifting sensors from their onset', () => {
    const simulator = new AirQualitySimulator({ devices: 20, locations: 2, seed: 3, faults: { stuck: 1, spike: 1, drift: 1 }, faultWindow: [START + 30 * MINUTE, START + 40 * MINUTE] });
    const faults = simulator.faults();
    expect(faults.map((f) => f.kind).sort()).toEqual(['drift', 'spike', 'stuck']);
    const series = new Map<string, Array<{ time: number; pm25: number; co?: number }>>();
    for (let t = START; t < START + 90 * MINUTE; t += MINUTE) {
      for (const r of simulator.readingsAt(t)) series.set(r.deviceId, [...(series.get(r.deviceId) ?? []), { time: t, pm25: r.pm25!, co: r.co }]);
    }
    const after = (kind: string) => {
      const fault = faults.find((f) => f.kind === kind)!;
      return { before: series.get(fault.deviceId)!.filter((r) => r.time < fault.onset), after: series.get(fault.deviceId)!.filter((r) => r.time >= fault.onset) };
    };
    const stuck = after('stuck');
    expect(new Set(stuck.after.map((r) => `${r.pm25}/${r.co}`)).size).toBe(1);
    expect(stuck.after[0].pm25).toBe(stuck.before.at(-1)!.pm25);
    const spike = after('spike');
    expect(spike.after[0].pm25).toBeGreaterThan(3 * spike.before.at(-1)!.pm25);
    const drift = after('drift');
    // +3% per minute: after 45 minutes the gain is about 2.3x.
    const mean = (rs: Array<{ pm25: number }>) => rs.reduce((s, r) => s + r.pm25, 0) / rs.length;
    const peers = [...series.entries()].filter(([id]) => !faults.some((f) => f.deviceId === id));
    const ratio = (rs: Array<{ time: number; pm25: number }>, from: number) => mean(rs.filter((r) => r.time >= from)) / mean(peers.flatMap(([, p]) => p.filter((r) => r.time >= from)));
    expect(ratio(drift.after, START + 80 * MINUTE) / ratio(drift.before, START)).toBeGreaterThan(1.8);
  });

  it('rejects impossible shapes', () => {
    expect(() => new AirQualitySimulator({ devices: 0, locations: 1 })).toThrow(/devices/);
    expect(() => new AirQualitySimulator({ devices: 3, locations: 4 })).toThrow(/locations/);
    expect(() => new AirQualitySimulator({ devices: 3, locations: 1, faults: { stuck: 2, drift: 2 } })).toThrow(/more faulty devices/);
  });
});

describe('live run', () => {
  let run: SimulationRun | undefined;
  afterEach(async () => {
    await run?.stop();
  });

  it('paces readings at the rate, stamped with the wall clock, and counts failures', async () => {
    const sent: number[] = [];
    let calls = 0;
    const simulator = new AirQualitySimulator({ devices: 10, locations: 2, seed: 1 });
    const started = Date.now();
    run = runSimulation({
      simulator,
      rate: 200,
      limit: 60,
      batchSize: 20,
      send: async (readings) => {
        calls++;
        for (const r of readings) sent.push(Date.parse(r.time));
        if (calls === 2) throw new Error('POST /readings answered 503');
      },
    });
    for (let i = 0; i < 200 && run.progress().sent + run.progress().errors < 60; i++) await new Promise((r) => setTimeout(r, 10));
    const progress = run.progress();
    expect(progress.sent + progress.errors).toBe(60);
    expect(progress.errors).toBeGreaterThan(0);
    expect(progress.lastError).toBe('POST /readings answered 503');
    // 60 readings at 200/s take about 300 ms; a burst would take none.
    expect(Math.max(...sent) - started).toBeGreaterThanOrEqual(200);
    expect(Math.min(...sent)).toBeGreaterThanOrEqual(started);
  });

  it('refuses a rate that is not positive', () => {
    expect(() => runSimulation({ simulator: new AirQualitySimulator({ devices: 1, locations: 1 }), rate: 0, send: async () => undefined })).toThrow(/rate/);
  });
});
