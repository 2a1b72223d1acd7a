/** The console's read endpoints: GET /locations, GET /readings, GET /windows. */
import { fn, http, type HttpRequestData } from '../../core/index.js';
import type { AirQualityConfig } from './config.js';
import { answering, QueryParams } from './params.js';
import { ALL } from './tables.js';
import { WINDOW_SIZES, windowKey } from './windowing.js';

/** GET /locations: every location with its latest minute's AQI and the category its alerts hold. */
export function listLocations() {
  return fn({
    trigger: http('GET', '/locations'),
    uses: { locations: 'read', windows: 'read' },
    handler: async (_event, ctx) => {
      const entries = await ctx.tables.locations.query(ALL);
      const latest = await Promise.all(entries.map((e) => ctx.tables.windows.query(String(e.location), { sortKey: { beginsWith: '1m#' }, reverse: true, limit: 1 })));
      return {
        body: entries.map(({ scope: _scope, location, ...state }, i) => {
          const minute = latest[i][0];
          return { location, ...(minute ? { time: minute.start, aqi: minute.aqi, category: minute.category, color: minute.color, pollutant: minute.pollutant, readings: minute.readings } : {}), ...state };
        }),
      };
    },
  });
}

/**
 * GET /readings?location=&since=&until=&limit=: one location's readings, oldest first (default: the
 * last 15 minutes); when more than `limit` match, the newest `limit` of them.
 */
export function listReadings(config: AirQualityConfig) {
  return fn({
    trigger: http('GET', '/readings'),
    uses: { readings: 'read' },
    handler: (event, ctx) =>
      answering(async () => {
        const params = new QueryParams((event.data as HttpRequestData).query);
        const location = params.string('location', true)!;
        const since = params.time('since') ?? config.now() - 15 * 60_000;
        const until = params.time('until');
        const limit = params.integer('limit', 1, 5000, 1000);
        const upper = until === undefined ? '\u{10FFFF}' : `${new Date(until).toISOString()}#\u{10FFFF}`;
        const items = (await ctx.tables.readings.query(location, { sortKey: { between: [new Date(since).toISOString(), upper] }, reverse: true, limit })).reverse();
        return { body: items.map(({ key: _key, expires: _expires, ...reading }) => reading) };
      }),
  });
}

/** GET /windows?location=&size=1|5|60&since=&limit=: one location's windows of one size, oldest first (default: the newest 60). */
export function listWindows() {
  return fn({
    trigger: http('GET', '/windows'),
    uses: { windows: 'read' },
    handler: (event, ctx) =>
      answering(async () => {
        const params = new QueryParams((event.data as HttpRequestData).query);
        const location = params.string('location', true)!;
        const size = params.oneOf('size', WINDOW_SIZES.map(String)) ?? '1';
        const since = params.time('since');
        const limit = params.integer('limit', 1, 1440, 60);
        const prefix = `${size}m#`;
        const items = since === undefined
          ? (await ctx.tables.windows.query(location, { sortKey: { beginsWith: prefix }, reverse: true, limit })).reverse()
          : await ctx.tables.windows.query(location, { sortKey: { between: [windowKey(Number(size), since), `${prefix}\u{10FFFF}`] }, limit });
        return { body: items.map(({ key: _key, expires: _expires, sums: _sums, ...window }) => window) };
      }),
  });
}
