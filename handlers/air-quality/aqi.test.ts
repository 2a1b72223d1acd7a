import { describe, expect, it } from 'vitest';
import {
  ALERT_LEVEL,
  MAX_AQI,
  POLLUTANTS,
  category,
  computeAqi,
  raisesAlert,
  subIndex,
  subIndexDetail,
  type AqiCategoryName,
  type Pollutant,
} from './aqi.js';

describe('worked example from the EPA Technical Assistance Document', () => {
  // The TAD's example (section IV, "Using the table and the equation"; same numbers
  // in EPA-454/B-18-007): 8-hr O3 0.07853 ppm, 24-hr PM2.5 35.9 µg/m³, 8-hr CO 8.4 ppm.
  // Recomputed by hand with the 2024 tables:
  //   O3    0.07853 truncates to 0.078, band 0.071-0.085 -> 101-150:
  //         (150-101)/(0.085-0.071) * (0.078-0.071) + 101 = 49/14 * 7 + 101 = 125.5 -> 126
  //   PM2.5 35.9, band 35.5-55.4 -> 101-150 (unchanged by the 2024 revision):
  //         (150-101)/(55.4-35.5) * (35.9-35.5) + 101 = 49/19.9 * 0.4 + 101 = 101.98 -> 102
  //   CO    8.4, band 4.5-9.4 -> 51-100:
  //         (100-51)/(9.4-4.5) * (8.4-4.5) + 51 = 10 * 3.9 + 51 = 90
  //   The AQI is the highest: 126, for ozone.
  it('gives the sub-indices 126 (O3), 102 (PM2.5) and 90 (CO)', () => {
    expect(subIndex('o3', 0.07853)).toBe(126);
    expect(subIndex('pm25', 35.9)).toBe(102);
    expect(subIndex('co', 8.4)).toBe(90);
  });

  it('reports AQI 126, ozone responsible, Unhealthy for Sensitive Groups', () => {
    expect(computeAqi({ o3: 0.07853, pm25: 35.9, co: 8.4 })).toEqual({
      aqi: 126,
      pollutant: 'o3',
      category: { name: 'Unhealthy for Sensitive Groups', level: 3, color: '#FF7E00' },
      subIndices: { o3: 126, pm25: 102, co: 90 },
      beyondIndex: false,
    });
  });

  it('rounds a .5 index up (125.5 -> 126), not down or banker-style', () => {
    expect(subIndex('o3', 0.078)).toBe(126);
  });
});

describe('mid-band values (hand-computed)', () => {
  const cases: Array<[Pollutant, number, number, string]> = [
    // 49/26.3 * (20.0-9.1) + 51 = 71.31
    ['pm25', 20.0, 71, '(100-51)/(35.4-9.1)*(20.0-9.1)+51 = 71.31'],
    // 12.0 was the top of Good (AQI 50) before 2024; now it is Moderate.
    ['pm25', 12.0, 56, '(100-51)/(35.4-9.1)*(12.0-9.1)+51 = 56.40'],
    ['pm25', 100, 182, '(200-151)/(125.4-55.5)*(100-55.5)+151 = 182.19'],
    ['pm25', 250, 350, '(500-301)/(325.4-225.5)*(250-225.5)+301 = 349.80'],
    ['pm10', 100, 73, '(100-51)/(154-55)*(100-55)+51 = 73.27'],
    ['no2', 200, 120, '(150-101)/(360-101)*(200-101)+101 = 119.73'],
    ['co', 13.0, 159, '(200-151)/(15.4-12.5)*(13.0-12.5)+151 = 159.45'],
    ['o3', 0.5, 396, '1-hr table: (500-301)/(0.604-0.405)*(0.500-0.405)+301 = 396'],
  ];
  it.each(cases)('%s %d -> %d  [%s]', (pollutant, concentration, expected) => {
    expect(subIndex(pollutant, concentration)).toBe(expected);
  });
});

describe('category boundaries for every pollutant', () => {
  // [top of one band, AQI], [bottom of the next band, AQI] straight from the tables.
  const edges: Record<Pollutant, Array<[number, number]>> = {
    pm25: [
      [0.0, 0], [9.0, 50], [9.1, 51], [35.4, 100], [35.5, 101], [55.4, 150], [55.5, 151],
      [125.4, 200], [125.5, 201], [225.4, 300], [225.5, 301], [325.4, 500],
    ],
    pm10: [
      [0, 0], [54, 50], [55, 51], [154, 100], [155, 101], [254, 150], [255, 151],
      [354, 200], [355, 201], [424, 300], [425, 301], [604, 500],
    ],
    o3: [
      [0.0, 0], [0.054, 50], [0.055, 51], [0.07, 100], [0.071, 101], [0.085, 150], [0.086, 151],
      [0.105, 200], [0.106, 201], [0.2, 300], [0.405, 301], [0.604, 500],
    ],
    no2: [
      [0, 0], [53, 50], [54, 51], [100, 100], [101, 101], [360, 150], [361, 151],
      [649, 200], [650, 201], [1249, 300], [1250, 301], [2049, 500],
    ],
    co: [
      [0.0, 0], [4.4, 50], [4.5, 51], [9.4, 100], [9.5, 101], [12.4, 150], [12.5, 151],
      [15.4, 200], [15.5, 201], [30.4, 300], [30.5, 301], [50.4, 500],
    ],
  };
  const expectedName = (aqi: number): AqiCategoryName =>
    aqi <= 50 ? 'Good'
      : aqi <= 100 ? 'Moderate'
        : aqi <= 150 ? 'Unhealthy for Sensitive Groups'
          : aqi <= 200 ? 'Unhealthy'
            : aqi <= 300 ? 'Very Unhealthy'
              : 'Hazardous';

  for (const pollutant of POLLUTANTS) {
    it.each(edges[pollutant])(`${pollutant} %d -> AQI %d`, (concentration, aqi) => {
      const detail = subIndexDetail(pollutant, concentration);
      expect(detail).toEqual({ aqi, beyondIndex: false, truncated: concentration });
      expect(category(detail.aqi).name).toBe(expectedName(aqi));
    });
  }
});

describe('beyond the AQI', () => {
  const justAbove: Array<[Pollutant, number]> = [
    ['pm25', 325.5],
    ['pm10', 605],
    ['o3', 0.605],
    ['no2', 2050],
    ['co', 50.5],
  ];
  it.each(justAbove)('%s %d is capped at 500 and flagged', (pollutant, concentration) => {
    expect(subIndex(pollutant, concentration)).toBe(500);
    expect(subIndexDetail(pollutant, concentration).beyondIndex).toBe(true);
  });

  it('flags the overall result and keeps Hazardous', () => {
    const result = computeAqi({ pm25: 900, pm10: 20 });
    expect(result).toMatchObject({ aqi: MAX_AQI, pollutant: 'pm25', beyondIndex: true });
    expect(result?.category.name).toBe('Hazardous');
  });

  it('a beyond-the-AQI pollutant wins a tie with one exactly at 500', () => {
    // pm25 325.4 is exactly 500; co 60 is beyond the index.
    const result = computeAqi({ pm25: 325.4, co: 60 });
    expect(result).toMatchObject({ aqi: 500, pollutant: 'co', beyondIndex: true, subIndices: { pm25: 500, co: 500 } });
  });
});

describe('ozone above the 8-hour table', () => {
  // The 8-hour table stops at 0.200 ppm (AQI 300); above it the 1-hour table applies,
  // held at 300 where the 1-hour table would give less (0.201-0.404 ppm).
  it.each([
    [0.2, 300],
    [0.201, 300],
    [0.3, 300],
    [0.404, 300],
    [0.405, 301],
    [0.604, 500],
  ])('o3 %d -> %d', (concentration, expected) => {
    expect(subIndex('o3', concentration)).toBe(expected);
  });

  it('never decreases as ozone rises', () => {
    let previous = 0;
    for (let ppb = 0; ppb <= 700; ppb++) {
      const aqi = subIndex('o3', ppb / 1000);
      expect(aqi).toBeGreaterThanOrEqual(previous);
      previous = aqi;
    }
  });
});

describe('truncation before lookup', () => {
  it.each<[Pollutant, number, number, number]>([
    ['pm25', 35.49, 35.4, 100], // would be 101 if rounded to 35.5
    ['pm25', 9.09, 9.0, 50],
    ['pm25', 55.45, 55.4, 150],
    ['pm10', 54.9, 54, 50],
    ['pm10', 154.99, 154, 100],
    ['o3', 0.0709, 0.07, 100],
    ['o3', 0.05499, 0.054, 50],
    ['no2', 53.99, 53, 50],
    ['no2', 100.5, 100, 100],
    ['co', 4.49, 4.4, 50],
    ['co', 9.45, 9.4, 100],
  ])('%s %d truncates to %d -> %d', (pollutant, raw, truncated, aqi) => {
    expect(subIndexDetail(pollutant, raw)).toEqual({ aqi, beyondIndex: false, truncated });
  });

  it('does not lose a tick to binary floating point', () => {
    // (0.055 + 0.1) - 0.1 === 0.05499999999999999; a plain Math.floor(c * 1000) gives 54 (AQI 50).
    const c = 0.055 + 0.1 - 0.1;
    expect(c).not.toBe(0.055);
    expect(subIndexDetail('o3', c)).toEqual({ aqi: 51, beyondIndex: false, truncated: 0.055 });
  });
});

describe('computeAqi', () => {
  it('picks the pollutant with the highest sub-index', () => {
    // pm25 12.3 -> 57, pm10 20 -> 19, o3 0.031 -> 29, no2 12 -> 11, co 0.4 -> 5
    const result = computeAqi({ pm25: 12.3, pm10: 20, o3: 0.031, no2: 12, co: 0.4 });
    expect(result).toEqual({
      aqi: 57,
      pollutant: 'pm25',
      category: { name: 'Moderate', level: 2, color: '#FFFF00' },
      subIndices: { pm25: 57, pm10: 19, o3: 29, no2: 11, co: 5 },
      beyondIndex: false,
    });
  });

  it('lets a non-PM pollutant drive the AQI', () => {
    // no2 700 -> (300-201)/(1249-650)*(700-650)+201 = 209.26 -> 209; pm25 40 -> 112
    const result = computeAqi({ pm25: 40, no2: 700 });
    expect(result).toMatchObject({ aqi: 209, pollutant: 'no2', subIndices: { pm25: 112, no2: 209 } });
    expect(result?.category.name).toBe('Very Unhealthy');
  });

  it('breaks ties by POLLUTANTS order', () => {
    expect(computeAqi({ no2: 53, pm10: 54 })?.pollutant).toBe('pm10');
  });

  it('returns undefined when no pollutant is given', () => {
    expect(computeAqi({})).toBeUndefined();
    expect(computeAqi({ pm25: undefined })).toBeUndefined();
  });

  it('only reports the pollutants it was given', () => {
    expect(computeAqi({ co: 0 })?.subIndices).toEqual({ co: 0 });
  });
});

describe('category', () => {
  it.each<[number, AqiCategoryName, number, string]>([
    [0, 'Good', 1, '#00E400'],
    [50, 'Good', 1, '#00E400'],
    [51, 'Moderate', 2, '#FFFF00'],
    [100, 'Moderate', 2, '#FFFF00'],
    [101, 'Unhealthy for Sensitive Groups', 3, '#FF7E00'],
    [150, 'Unhealthy for Sensitive Groups', 3, '#FF7E00'],
    [151, 'Unhealthy', 4, '#FF0000'],
    [200, 'Unhealthy', 4, '#FF0000'],
    [201, 'Very Unhealthy', 5, '#8F3F97'],
    [300, 'Very Unhealthy', 5, '#8F3F97'],
    [301, 'Hazardous', 6, '#7E0023'],
    [500, 'Hazardous', 6, '#7E0023'],
    [501, 'Hazardous', 6, '#7E0023'],
  ])('AQI %d is %s (level %d, %s)', (aqi, name, level, color) => {
    expect(category(aqi)).toEqual({ name, level, color });
  });

  it('alerts from Unhealthy for Sensitive Groups upward', () => {
    expect(ALERT_LEVEL).toBe(3);
    expect(raisesAlert(100)).toBe(false);
    expect(raisesAlert(101)).toBe(true);
    expect(raisesAlert(500)).toBe(true);
  });
});

describe('bad input', () => {
  it.each([-0.1, -1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])(
    'subIndex throws RangeError for %d',
    (value) => {
      expect(() => subIndex('pm25', value)).toThrow(RangeError);
    },
  );

  it('names the pollutant in the error', () => {
    expect(() => subIndex('no2', -5)).toThrow(/no2.*-5/);
  });

  it('rejects non-numbers and unknown pollutants coming from untyped callers', () => {
    expect(() => subIndex('pm25', '12' as unknown as number)).toThrow(RangeError);
    expect(() => subIndex('so2' as unknown as Pollutant, 10)).toThrow(RangeError);
  });

  it('computeAqi throws when any given concentration is bad', () => {
    expect(() => computeAqi({ pm25: 10, co: -1 })).toThrow(RangeError);
    expect(() => computeAqi({ o3: Number.NaN })).toThrow(RangeError);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('category throws RangeError for %d', (value) => {
    expect(() => category(value)).toThrow(RangeError);
  });
});
