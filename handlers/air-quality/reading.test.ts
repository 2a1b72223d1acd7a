import { describe, expect, it } from 'vitest';
import { describeDuration, MAX_BATCH, parseReadings, readingSchema, type Reading } from './reading.js';

const valid: Reading = {
  deviceId: 'd-001',
  location: 'downtown',
  time: '2026-11-28T10:00:00Z',
  pm25: 12.3,
  pm10: 20,
  o3: 0.031,
  no2: 12,
  co: 0.4,
  temperature: 21.5,
  humidity: 40,
};

/** A valid reading with some fields replaced (undefined removes the field). */
function withFields(changes: Record<string, unknown>): Record<string, unknown> {
  const reading: Record<string, unknown> = { ...valid, ...changes };
  for (const [key, value] of Object.entries(changes)) if (value === undefined) delete reading[key];
  return reading;
}

describe('valid readings', () => {
  it('accepts the example single reading as a one-element list', () => {
    expect(parseReadings(structuredClone(valid))).toEqual({ ok: true, readings: [valid] });
  });

  it('accepts a batch and keeps its order', () => {
    const second = { deviceId: 'sensor.02:a_b', location: 'harbour', time: '2026-11-28T10:05:00.250+01:00', no2: 40 };
    expect(parseReadings([valid, second])).toEqual({ ok: true, readings: [valid, second] });
  });

  it('accepts a batch of exactly MAX_BATCH readings', () => {
    const result = parseReadings(Array.from({ length: MAX_BATCH }, () => valid));
    expect(result.ok && result.readings.length).toBe(500);
  });

  it('needs only one pollutant; temperature and humidity are optional', () => {
    const minimal = { deviceId: 'd', location: 'l', time: '2026-11-28T10:00:00Z', co: 0 };
    expect(parseReadings(minimal)).toEqual({ ok: true, readings: [minimal] });
  });

  it('accepts the ends of every range', () => {
    const low = withFields({ pm25: 0, pm10: 0, o3: 0, no2: 0, co: 0, temperature: -60, humidity: 0 });
    const high = withFields({ pm25: 1000, pm10: 2000, o3: 1, no2: 2000, co: 100, temperature: 70, humidity: 100 });
    expect(parseReadings([low, high]).ok).toBe(true);
  });

  it('strips unknown fields', () => {
    const result = parseReadings({ ...valid, firmware: '1.2.3', so2: 5 });
    expect(result).toEqual({ ok: true, readings: [valid] });
  });

  it('accepts a deviceId of 128 characters', () => {
    expect(parseReadings(withFields({ deviceId: 'a'.repeat(128) })).ok).toBe(true);
  });
});

describe('bad fields in a single reading (no index)', () => {
  const cases: Array<[string, Record<string, unknown>, string, string]> = [
    // wrong type
    ['pm25 as a string', { pm25: '12.3' }, 'pm25', 'expected a number, got string'],
    ['no2 as null', { no2: null }, 'no2', 'expected a number, got null'],
    ['humidity as a boolean', { humidity: true }, 'humidity', 'expected a number, got boolean'],
    ['location as a number', { location: 7 }, 'location', 'expected a string, got number'],
    ['time as a number', { time: 1764324000 }, 'time', 'expected a string, got number'],
    // out of range
    ['pm25 above 1000', { pm25: 1000.1 }, 'pm25', 'must be between 0 and 1000 µg/m³, got 1000.1'],
    ['pm10 above 2000', { pm10: 2001 }, 'pm10', 'must be between 0 and 2000 µg/m³, got 2001'],
    ['negative o3', { o3: -0.001 }, 'o3', 'must be between 0 and 1 ppm, got -0.001'],
    ['no2 above 2000', { no2: 2500 }, 'no2', 'must be between 0 and 2000 ppb, got 2500'],
    ['co above 100', { co: 101 }, 'co', 'must be between 0 and 100 ppm, got 101'],
    ['temperature below -60', { temperature: -61 }, 'temperature', 'must be between -60 and 70 °C, got -61'],
    ['humidity above 100', { humidity: 100.5 }, 'humidity', 'must be between 0 and 100%, got 100.5'],
    // missing required
    ['missing deviceId', { deviceId: undefined }, 'deviceId', 'is required'],
    ['missing location', { location: undefined }, 'location', 'is required'],
    ['missing time', { time: undefined }, 'time', 'is required'],
    // bad strings
    ['empty deviceId', { deviceId: '' }, 'deviceId', 'must not be empty'],
    ['deviceId with a space', { deviceId: 'd 001' }, 'deviceId', "may only contain letters, digits, '.', '_', ':' and '-'"],
    ['deviceId with a slash', { deviceId: '../etc' }, 'deviceId', "may only contain letters, digits, '.', '_', ':' and '-'"],
    ['deviceId too long', { deviceId: 'a'.repeat(129) }, 'deviceId', 'must be at most 128 characters, got 129'],
    ['empty location', { location: '' }, 'location', 'must not be empty'],
    ['location too long', { location: 'x'.repeat(200) }, 'location', 'must be at most 128 characters, got 200'],
  ];
  it.each(cases)('%s', (_label, changes, field, message) => {
    expect(parseReadings(withFields(changes))).toEqual({ ok: false, errors: [{ field, message }] });
  });
});

describe('bad time', () => {
  const message = 'must be an ISO 8601 date-time with a timezone, e.g. 2026-11-28T10:00:00Z';
  it.each([
    ['no timezone', '2026-11-28T10:00:00'],
    ['date only', '2026-11-28'],
    ['free text', 'yesterday'],
    ['impossible date', '2026-02-30T10:00:00Z'],
    ['month 13', '2026-13-01T10:00:00Z'],
    ['hour 24', '2026-11-28T24:00:00Z'],
    ['empty', ''],
  ])('rejects %s (%s)', (_label, time) => {
    expect(parseReadings(withFields({ time }))).toEqual({ ok: false, errors: [{ field: 'time', message }] });
  });

  it.each(['2026-11-28T10:00:00Z', '2026-11-28T10:00:00.123Z', '2026-11-28T10:00:00-05:00', '2024-02-29T00:00:00+00:00'])(
    'accepts %s',
    (time) => {
      expect(parseReadings(withFields({ time })).ok).toBe(true);
    },
  );
});

describe('at least one pollutant', () => {
  const noPollutants = { deviceId: 'd-001', location: 'downtown', time: '2026-11-28T10:00:00Z', temperature: 20 };
  const error = { field: 'pollutants', message: 'at least one pollutant is required (pm25, pm10, o3, no2, co)' };

  it('names the field "pollutants"', () => {
    expect(parseReadings(noPollutants)).toEqual({ ok: false, errors: [error] });
  });

  it('is reported alongside other bad fields', () => {
    expect(parseReadings({ ...noPollutants, humidity: 140 })).toEqual({
      ok: false,
      errors: [{ field: 'humidity', message: 'must be between 0 and 100%, got 140' }, error],
    });
  });

  it('is reported even when another field has the wrong type', () => {
    expect(parseReadings({ ...noPollutants, location: 5 })).toEqual({
      ok: false,
      errors: [{ field: 'location', message: 'expected a string, got number' }, error],
    });
  });

  it('is not reported when a pollutant is present but invalid', () => {
    expect(parseReadings({ ...noPollutants, pm10: 'high' })).toEqual({
      ok: false,
      errors: [{ field: 'pm10', message: 'expected a number, got string' }],
    });
  });

  it('is enforced by readingSchema itself', () => {
    expect(readingSchema.safeParse(noPollutants).success).toBe(false);
  });
});

describe('batches name the index of each bad reading', () => {
  it('reports every bad field with its index and nothing for good readings', () => {
    const body = [
      valid,
      withFields({ pm25: '12.3' }),
      withFields({ pm25: 1200, time: 'yesterday' }),
      valid,
      { deviceId: 'd', location: 'l', time: '2026-11-28T10:00:00Z' },
    ];
    const result = parseReadings(body);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.errors).toEqual(
      expect.arrayContaining([
        { index: 1, field: 'pm25', message: 'expected a number, got string' },
        { index: 2, field: 'pm25', message: 'must be between 0 and 1000 µg/m³, got 1200' },
        {
          index: 2,
          field: 'time',
          message: 'must be an ISO 8601 date-time with a timezone, e.g. 2026-11-28T10:00:00Z',
        },
        { index: 4, field: 'pollutants', message: 'at least one pollutant is required (pm25, pm10, o3, no2, co)' },
      ]),
    );
    expect(!result.ok && result.errors).toHaveLength(4);
  });

  it('accepts nothing from a batch with any bad reading', () => {
    const result = parseReadings([valid, withFields({ co: -1 })]);
    expect(result).toEqual({
      ok: false,
      errors: [{ index: 1, field: 'co', message: 'must be between 0 and 100 ppm, got -1' }],
    });
  });

  it('reports a non-object item as the reading itself', () => {
    expect(parseReadings([valid, 'd-001', null, [valid]])).toEqual({
      ok: false,
      errors: [
        { index: 1, field: 'reading', message: 'expected an object, got string' },
        { index: 2, field: 'reading', message: 'expected an object, got null' },
        { index: 3, field: 'reading', message: 'expected an object, got array' },
      ],
    });
  });

  it('reports one error per field', () => {
    // '' fails both the length and the character rule; one message is enough.
    const result = parseReadings([withFields({ deviceId: '' })]);
    expect(result).toEqual({ ok: false, errors: [{ index: 0, field: 'deviceId', message: 'must not be empty' }] });
  });
});

describe('bodies that are not readings give one clear error', () => {
  it('empty array', () => {
    expect(parseReadings([])).toEqual({
      ok: false,
      errors: [{ field: 'body', message: 'expected at least one reading, got an empty array' }],
    });
  });

  it('more than MAX_BATCH readings', () => {
    expect(parseReadings(Array.from({ length: MAX_BATCH + 1 }, () => valid))).toEqual({
      ok: false,
      errors: [{ field: 'body', message: 'expected at most 500 readings, got 501' }],
    });
  });

  it.each([
    ['a string', 'hello', 'string'],
    ['a number', 42, 'number'],
    ['null', null, 'null'],
    ['undefined', undefined, 'undefined'],
    ['a boolean', true, 'boolean'],
  ])('%s', (_label, body, type) => {
    expect(parseReadings(body)).toEqual({
      ok: false,
      errors: [{ field: 'body', message: `expected a reading object or an array of readings, got ${type}` }],
    });
  });
});

describe('clock-skew bounds', () => {
  const now = Date.parse('2026-11-28T10:00:00Z');
  const bounds = { now, maxFutureMs: 5 * 60_000, maxAgeMs: 24 * 3_600_000 };

  it('accepts readings up to the bounds', () => {
    const times = ['2026-11-28T10:05:00Z', '2026-11-27T10:00:00Z', '2026-11-28T11:04:00+01:00'];
    expect(parseReadings(times.map((time) => withFields({ time })), bounds).ok).toBe(true);
  });

  it('rejects a reading too far ahead, naming the skew and the bound', () => {
    expect(parseReadings(withFields({ time: '2026-11-28T10:07:30Z' }), bounds)).toEqual({
      ok: false,
      errors: [{ field: 'time', message: 'is 450 seconds ahead of the server clock; at most 5 minutes is accepted (is the device clock set?)' }],
    });
  });

  it('rejects a reading older than the bound, with its index in a batch', () => {
    expect(parseReadings([valid, withFields({ time: '2026-11-27T09:59:59Z' })].map((r) => ({ ...r, time: r.time === valid.time ? '2026-11-28T09:59:00Z' : r.time })), bounds)).toEqual({
      ok: false,
      errors: [{ index: 1, field: 'time', message: 'is older than 24 hours; readings that old are not accepted' }],
    });
  });

  it('is not applied without bounds (events already accepted, replays)', () => {
    expect(parseReadings(withFields({ time: '2001-01-01T00:00:00Z' })).ok).toBe(true);
  });

  it('writes durations as people do', () => {
    expect([describeDuration(300_000), describeDuration(3_600_000), describeDuration(86_400_000), describeDuration(1000), describeDuration(90_000)]).toEqual(['5 minutes', '1 hour', '24 hours', '1 second', '90 seconds']);
  });
});
