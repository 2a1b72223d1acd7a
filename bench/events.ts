/** The bench's events: CloudEvents of type `bench.event` whose data serializes to about 200 bytes. */
import { newEventId, type CloudEvent } from '../core/event.js';

export const EVENT_TYPE = 'bench.event';
export const SENSORS = 1000;

/** The payload every bench event carries; `i` indexes the scenario's sample arrays (-1: warm-up). */
export interface BenchData {
  i: number;
  sensor: string;
  pm25: number;
  pm10: number;
  temperature: number;
  humidity: number;
  pad: string;
}

// Padding chosen once so that `data` serializes to about 200 bytes (199-200 for i up to 7 digits).
const PAD = (() => {
  const sample = { i: 1_000_000, sensor: 'sensor-0000', pm25: 12.34, pm10: 23.45, temperature: 21.5, humidity: 45.25, pad: '' };
  return 'x'.repeat(200 - JSON.stringify(sample).length);
})();

export function benchEvent(i: number): CloudEvent<BenchData> {
  return {
    specversion: '1.0',
    id: newEventId(), // time-ordered, as petrel's own ids (DESIGN.md: random ids cost more)
    source: 'bench/load',
    type: EVENT_TYPE,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: {
      i,
      sensor: `sensor-${String(Math.max(0, i) % SENSORS).padStart(4, '0')}`,
      pm25: 12.34,
      pm10: 23.45,
      temperature: 21.5,
      humidity: 45.25,
      pad: PAD,
    },
  };
}

/** `count` events in batches of `size`, indexed 0..count-1 (or all -1 for warm-up). */
export function batches(count: number, size: number, warmUp = false): CloudEvent<BenchData>[][] {
  const out: CloudEvent<BenchData>[][] = [];
  for (let start = 0; start < count; start += size) {
    const batch: CloudEvent<BenchData>[] = [];
    for (let i = start; i < Math.min(count, start + size); i++) batch.push(benchEvent(warmUp ? -1 : i));
    out.push(batch);
  }
  return out;
}
