/**
 * The whole pipeline on the embedded runtime, twice over the same 75 minutes of a simulated city:
 * once clean (each minute's readings in order), once with a quarter of the readings a minute
 * late, a tenth resent under a new event id (an MQTT redelivery) and a twentieth resent under the
 * same id. Both must end with the same windows and the same alerts; the clean run must flag
 * every injected sensor fault and no clean sensor.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { newEventId } from '../../core/event.js';
import type { Reading } from './reading.js';
import { AirQualitySimulator, type FaultTruth } from './simulator.js';
import { MINUTE, startTestApp } from './testing.js';

// A fixed past morning, so every run sees the same data (event time; the runtime's clock is now).
const T0 = Date.UTC(2025, 0, 15, 6, 0);
const MINUTES = 75;
const LOCATIONS = ['harbour', 'downtown'];

interface Sent {
  reading: Reading;
  id: string;
}

/** Per minute, every sensor's reading, a few seconds apart; harbour has a pollution episode (PM x6) in minutes 15-34. */
function cityReadings(): { minutes: Sent[][]; faults: FaultTruth[] } {
  const simulator = new AirQualitySimulator({ devices: 16, locations: 2, seed: 4, faults: { stuck: 1, spike: 1, drift: 1 }, faultWindow: [T0 + 35 * MINUTE, T0 + 40 * MINUTE] });
  const minutes = Array.from({ length: MINUTES }, (_, m) =>
    simulator.readingsAt(T0 + m * MINUTE).map((reading, i) => {
      const time = new Date(T0 + m * MINUTE + i * 3000).toISOString();
      const episode = reading.location === 'harbour' && m >= 15 && m < 35 ? 6 : 1;
      return { id: newEventId(), reading: { ...reading, time, pm25: Math.round(reading.pm25! * episode * 10) / 10, pm10: Math.round(reading.pm10! * episode * 10) / 10 } };
    }),
  );
  return { minutes, faults: simulator.faults() };
}

function lcg(seed: number): () => number {
  let state = seed;
  return () => ((state = (state * 48271) % 2147483647) / 2147483647);
}

/** The messy arrival: late by a minute, resent with new ids and with the same ids, shuffled across devices but in order per device. */
function messyArrival(minutes: Sent[][]): Sent[][] {
  const random = lcg(42);
  const batches: Sent[][] = Array.from({ length: minutes.length + 2 }, () => []);
  minutes.forEach((sent, m) => {
    for (const s of sent) {
      batches[random() < 0.25 ? m + 1 : m].push(s);
      if (random() < 0.1) batches[m + 2].push({ reading: s.reading, id: newEventId() });
      if (random() < 0.05) batches[m + 1].push(s);
    }
  });
  return batches.map((batch) => {
    const shuffled = [...batch].sort(() => random() - 0.5);
    const perDevice = new Map<string, Sent[]>();
    for (const s of shuffled) perDevice.set(s.reading.deviceId, [...(perDevice.get(s.reading.deviceId) ?? []), s]);
    for (const list of perDevice.values()) list.sort((a, b) => Date.parse(a.reading.time) - Date.parse(b.reading.time));
    return shuffled.map((s) => perDevice.get(s.reading.deviceId)!.shift()!);
  });
}

async function run(batches: Sent[][]): Promise<{ windows: unknown[]; alerts: Array<Record<string, unknown>>; locations: unknown }> {
  const app = await startTestApp({ retentionMs: 100 * 365 * 86_400_000 });
  try {
    for (const batch of batches) if (batch.length) await app.feed(batch.map((s) => s.reading), batch.map((s) => s.id));
    const windows: unknown[] = [];
    for (const location of LOCATIONS) for (const size of [1, 5, 60]) windows.push(await app.get(`/windows?location=${location}&size=${size}&limit=1440`));
    return { windows, alerts: (await app.get('/alerts?limit=1000')) as Array<Record<string, unknown>>, locations: await app.get('/locations') };
  } finally {
    await app.stop();
  }
}

describe('late and duplicated readings', () => {
  const { minutes, faults } = cityReadings();
  let clean: Awaited<ReturnType<typeof run>>;
  let messy: Awaited<ReturnType<typeof run>>;

  beforeAll(async () => {
    clean = await run(minutes);
    messy = await run(messyArrival(minutes));
  }, 120_000);

  it('give the same windows, alerts and location summaries as a clean run', () => {
    expect(messy.windows).toEqual(clean.windows);
    expect(messy.alerts).toEqual(clean.alerts);
    expect(messy.locations).toEqual(clean.locations);
    // Nothing was too late for its window, and windows exist of every size.
    expect((clean.locations as Array<{ tooLate: number }>).map((l) => l.tooLate)).toEqual([0, 0]);
    expect((clean.windows as unknown[][]).every((w) => w.length > 0)).toBe(true);
  });

  it('raise category alerts up through the episode and down after it, without flapping, and one sustained alert', () => {
    // Oldest first, up to 15 minutes after the episode: only rises while it builds, then only falls.
    const harbour = clean.alerts.filter((a) => a.location === 'harbour' && a.kind !== 'anomaly' && Date.parse(String(a.time)) < T0 + 50 * MINUTE).reverse();
    const category = harbour.filter((a) => a.kind === 'category');
    expect(category.map((a) => a.direction).join(' ')).toMatch(/^(up )+down( down)*$/);
    expect(category.filter((a) => a.direction === 'up').map((a) => a.level)).toEqual([...new Set(category.filter((a) => a.direction === 'up').map((a) => a.level))].sort());
    expect(harbour.filter((a) => a.kind === 'sustained')).toHaveLength(1);
    expect(clean.alerts.filter((a) => a.location === 'downtown' && a.kind !== 'anomaly')).toEqual([]);
  });

  it('flag every injected sensor fault, and no clean sensor', () => {
    const anomalies = clean.alerts.filter((a) => a.kind === 'anomaly');
    for (const fault of faults) {
      const found = anomalies.find((a) => a.deviceId === fault.deviceId && a.anomaly === fault.kind);
      expect(found, `${fault.kind} of ${fault.deviceId}`).toBeDefined();
      expect(Date.parse(String(found!.time))).toBeGreaterThanOrEqual(fault.onset);
    }
    const faulty = new Set(faults.map((f) => f.deviceId));
    expect(anomalies.filter((a) => !faulty.has(String(a.deviceId)))).toEqual([]);
  });
});
