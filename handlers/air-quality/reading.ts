/**
 * Sensor reading schema and request-body parsing.
 *
 * Units match aqi.ts: pm25 and pm10 in µg/m³, o3 and co in ppm, no2 in ppb.
 * The ranges are plausibility limits for a sensor, not AQI breakpoints: values
 * above the AQI's top breakpoint are still accepted (they are "beyond the AQI").
 */
import { z } from 'zod';

export const POLLUTANT_FIELDS = ['pm25', 'pm10', 'o3', 'no2', 'co'] as const;

/** Most readings one request may carry. */
export const MAX_BATCH = 500;

/** Plain-word name of a JSON value's type, for "expected X, got Y" messages. */
function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number' && Number.isNaN(value)) return 'NaN';
  return typeof value;
}

/** Missing fields say "is required"; present ones say what they were. */
function typeError(expected: string) {
  return (issue: { input?: unknown }): string =>
    issue.input === undefined ? 'is required' : `expected ${expected}, got ${describeType(issue.input)}`;
}

function rangedNumber(min: number, max: number, unit: string) {
  const range = (issue: { input?: unknown }): string =>
    `must be between ${min} and ${max}${unit}, got ${String(issue.input)}`;
  return z
    .number({ error: typeError('a number') })
    .min(min, { error: range })
    .max(max, { error: range });
}

function boundedString(maxLength: number) {
  return z
    .string({ error: typeError('a string') })
    .min(1, { error: 'must not be empty' })
    .max(maxLength, {
      error: (issue) =>
        `must be at most ${maxLength} characters` +
        (typeof issue.input === 'string' ? `, got ${issue.input.length}` : ''),
    });
}

export const readingSchema = z
  .object({
    deviceId: boundedString(128).regex(/^[A-Za-z0-9._:-]+$/, {
      error: "may only contain letters, digits, '.', '_', ':' and '-'",
    }),
    location: boundedString(128),
    // Requires seconds and a zone (Z or ±hh:mm): a reading without a zone is ambiguous.
    time: z.iso.datetime({
      offset: true,
      error: (issue) =>
        typeof issue.input === 'string'
          ? 'must be an ISO 8601 date-time with a timezone, e.g. 2026-11-28T10:00:00Z'
          : typeError('a string')(issue),
    }),
    pm25: rangedNumber(0, 1000, ' µg/m³').optional(),
    pm10: rangedNumber(0, 2000, ' µg/m³').optional(),
    o3: rangedNumber(0, 1, ' ppm').optional(),
    no2: rangedNumber(0, 2000, ' ppb').optional(),
    co: rangedNumber(0, 100, ' ppm').optional(),
    temperature: rangedNumber(-60, 70, ' °C').optional(),
    humidity: rangedNumber(0, 100, '%').optional(),
  })
  // z.object drops unknown keys by default; the refine below runs even when
  // other fields failed so a body gets every error at once.
  .refine(
    (reading) => {
      const fields: Record<string, unknown> = reading;
      return POLLUTANT_FIELDS.some((field) => fields[field] !== undefined);
    },
    {
      path: ['pollutants'],
      error: `at least one pollutant is required (${POLLUTANT_FIELDS.join(', ')})`,
      when: (payload) =>
        typeof payload.value === 'object' && payload.value !== null && !Array.isArray(payload.value),
    },
  );

export type Reading = z.infer<typeof readingSchema>;

export interface ReadingError {
  /** Position in the array, when the body was an array. */
  index?: number;
  /** The bad field: a reading field name, "pollutants", "reading" (the item itself) or "body". */
  field: string;
  message: string;
}

export type ParseResult =
  | { ok: true; readings: Reading[] }
  | { ok: false; errors: ReadingError[] };

/** Clock-skew bounds: how far a reading's time may be from the receiver's clock. */
export interface TimeBounds {
  /** The receiver's clock, epoch milliseconds. */
  now: number;
  /** How far ahead of `now` a reading may be (device clocks run fast). */
  maxFutureMs: number;
  /** How far behind `now` a reading may be (devices buffer while offline). */
  maxAgeMs: number;
}

/** "90 seconds", "5 minutes", "24 hours": durations as people write them. */
export function describeDuration(ms: number): string {
  const [amount, unit] = ms % 3_600_000 === 0 && ms >= 3_600_000 ? [ms / 3_600_000, 'hour']
    : ms % 60_000 === 0 && ms >= 60_000 ? [ms / 60_000, 'minute']
      : [Math.round(ms / 1000), 'second'];
  return `${amount} ${unit}${amount === 1 ? '' : 's'}`;
}

/** Why a valid reading's time is outside the bounds, or undefined when it is inside. */
export function timeProblem(time: string, bounds: TimeBounds): string | undefined {
  const offset = Date.parse(time) - bounds.now;
  if (offset > bounds.maxFutureMs) {
    return `is ${describeDuration(Math.ceil(offset / 1000) * 1000)} ahead of the server clock; at most ${describeDuration(bounds.maxFutureMs)} is accepted (is the device clock set?)`;
  }
  if (-offset > bounds.maxAgeMs) return `is older than ${describeDuration(bounds.maxAgeMs)}; readings that old are not accepted`;
  return undefined;
}

/** One error per field: the first thing wrong with it is enough to fix it. */
function toErrors(issues: readonly z.core.$ZodIssue[], value: unknown, index: number | undefined): ReadingError[] {
  const seen = new Set<string>();
  const errors: ReadingError[] = [];
  for (const issue of issues) {
    const field = issue.path.length === 0 ? 'reading' : issue.path.map(String).join('.');
    if (seen.has(field)) continue;
    seen.add(field);
    // A non-object item gets zod's generic message; say it in the same words as the rest.
    const message = field === 'reading' ? `expected an object, got ${describeType(value)}` : issue.message;
    errors.push(index === undefined ? { field, message } : { index, field, message });
  }
  return errors;
}

/** One item: its reading, or the errors naming each bad field (time bounds checked when given). */
function parseItem(item: unknown, index: number | undefined, bounds: TimeBounds | undefined): { reading: Reading } | { errors: ReadingError[] } {
  const result = readingSchema.safeParse(item);
  if (!result.success) return { errors: toErrors(result.error.issues, item, index) };
  const problem = bounds && timeProblem(result.data.time, bounds);
  if (!problem) return { reading: result.data };
  return { errors: [index === undefined ? { field: 'time', message: problem } : { index, field: 'time', message: problem }] };
}

/**
 * Parse a request body holding one reading or an array of 1..MAX_BATCH readings.
 * Unknown fields are stripped. On failure every bad field is named, with its
 * array index when the body was an array; nothing is accepted from a body
 * with any error. With `bounds`, a time too far from the receiver's clock is an error too.
 */
export function parseReadings(body: unknown, bounds?: TimeBounds): ParseResult {
  if (Array.isArray(body)) {
    if (body.length === 0) {
      return { ok: false, errors: [{ field: 'body', message: 'expected at least one reading, got an empty array' }] };
    }
    if (body.length > MAX_BATCH) {
      return {
        ok: false,
        errors: [{ field: 'body', message: `expected at most ${MAX_BATCH} readings, got ${body.length}` }],
      };
    }
    const readings: Reading[] = [];
    const errors: ReadingError[] = [];
    body.forEach((item: unknown, index) => {
      const parsed = parseItem(item, index, bounds);
      if ('reading' in parsed) readings.push(parsed.reading);
      else errors.push(...parsed.errors);
    });
    return errors.length > 0 ? { ok: false, errors } : { ok: true, readings };
  }
  if (typeof body !== 'object' || body === null) {
    return {
      ok: false,
      errors: [{ field: 'body', message: `expected a reading object or an array of readings, got ${describeType(body)}` }],
    };
  }
  const parsed = parseItem(body, undefined, bounds);
  return 'reading' in parsed ? { ok: true, readings: [parsed.reading] } : { ok: false, errors: parsed.errors };
}
