import { describe, expect, it } from 'vitest';
import { addValues, combineSums, meansOf, minuteOf, windowItem, windowKey, type Sums } from './windowing.js';

describe('window sums', () => {
  const values = [{ pm25: 0.1 }, { pm25: 0.2 }, { pm25: 0.3, co: 0.7 }, { pm25: 12.345678 }, { co: 0.1 }];

  it('give exactly the same sums in any order, where float addition would not', () => {
    const forward: Sums = {};
    const backward: Sums = {};
    values.forEach((v) => addValues(forward, v));
    [...values].reverse().forEach((v) => addValues(backward, v));
    expect(backward).toEqual(forward);
    expect(0.1 + 0.2 + 0.3).not.toBe(0.3 + 0.2 + 0.1);
    expect(meansOf(forward)).toEqual({ pm25: (0.1 + 0.2 + 0.3 + 12.345678) / 4, co: 0.4 });
  });

  it('take a correction as minus the old values plus the new, and drop a pollutant whose count reaches zero', () => {
    const sums: Sums = {};
    addValues(sums, { pm25: 10, co: 1 });
    addValues(sums, { pm25: 30 });
    addValues(sums, { pm25: 10, co: 1 }, -1);
    addValues(sums, { pm25: 14 });
    expect(meansOf(sums)).toEqual({ pm25: 22 });
  });

  it('combine minutes into a sliding window', () => {
    const a: Sums = {};
    const b: Sums = {};
    addValues(a, { pm25: 10 });
    addValues(b, { pm25: 20, o3: 0.05 });
    expect(meansOf(combineSums([a, b]))).toEqual({ pm25: 15, o3: 0.05 });
  });
});

describe('window items', () => {
  it('carry the AQI of the averages and sort by size then start', () => {
    const sums: Sums = {};
    addValues(sums, { pm25: 35.9 });
    const start = minuteOf(Date.UTC(2026, 10, 28, 10, 0, 42));
    const item = windowItem('harbour', 5, start, sums, 1, true, 86_400_000);
    expect(item).toMatchObject({ key: '5m#2026-11-28T10:00:00.000Z', start: '2026-11-28T10:00:00.000Z', end: '2026-11-28T10:05:00.000Z', aqi: 102, category: 'Unhealthy for Sensitive Groups', pollutant: 'pm25', final: true });
    expect(item.expires).toBe(Math.floor((Date.parse(item.end) + 86_400_000) / 1000));
    expect(windowKey(60, start) > windowKey(5, start)).toBe(true);
    expect(windowKey(1, start) < windowKey(1, start + 60_000)).toBe(true);
  });
});
