/** GET /alerts[?location=]: stored alerts, newest first. */
import { fn, http, type HttpRequestData, type Item } from '../../core/index.js';
import { ALL_LOCATIONS } from './tables.js';

const LIMIT = 100;

export default fn({
  trigger: http('GET', '/alerts'),
  uses: { alerts: 'read', locations: 'read' },
  handler: async (event, ctx) => {
    const { query } = event.data as HttpRequestData;
    if (query.location !== undefined && (typeof query.location !== 'string' || query.location === '')) {
      return { status: 400, body: { error: 'location must be a single non-empty string' } };
    }
    const locations = typeof query.location === 'string'
      ? [query.location]
      : (await ctx.tables.locations.query(ALL_LOCATIONS)).map((l) => String(l.location));
    const perLocation = await Promise.all(locations.map((location) => ctx.tables.alerts.query(location, { reverse: true, limit: LIMIT })));
    const alerts = perLocation.flat().sort(newestFirst).slice(0, LIMIT);
    return { body: alerts.map(({ location, aqi, category, pollutant, time, deviceId }) => ({ location, aqi, category, pollutant, time, deviceId })) };
  },
});

function newestFirst(a: Item, b: Item): number {
  return Date.parse(String(b.time)) - Date.parse(String(a.time));
}
