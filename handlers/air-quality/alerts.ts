/** GET /alerts[?location=&kind=&since=&until=&limit=]: stored alerts, newest first. */
import { fn, http, type HttpRequestData, type Item } from '../../core/index.js';
import { ALERT_KINDS } from './config.js';
import { answering, QueryParams } from './params.js';
import { ALL } from './tables.js';

const MAX_LIMIT = 1000;

export function listAlerts() {
  return fn({
    trigger: http('GET', '/alerts'),
    uses: { alerts: 'read', locations: 'read' },
    handler: (event, ctx) =>
      answering(async () => {
        const params = new QueryParams((event.data as HttpRequestData).query);
        const location = params.string('location');
        const kind = params.oneOf('kind', ALERT_KINDS);
        const since = params.time('since');
        const until = params.time('until');
        const limit = params.integer('limit', 1, MAX_LIMIT, 100);
        // Keys begin with the alert's ISO time, so a time range is a key range.
        const range = since !== undefined || until !== undefined
          ? { between: [since === undefined ? '' : new Date(since).toISOString(), until === undefined ? '\u{10FFFF}' : `${new Date(until).toISOString()}#\u{10FFFF}`] as [string, string] }
          : undefined;
        const locations = location !== undefined ? [location] : (await ctx.tables.locations.query(ALL)).map((l) => String(l.location));
        // Filtering by kind after the query: fetch more so `limit` alerts of that kind can be found.
        const perLocation = await Promise.all(locations.map((l) => ctx.tables.alerts.query(l, { sortKey: range, reverse: true, limit: kind ? undefined : limit })));
        const alerts = perLocation.flat().filter((a) => kind === undefined || a.kind === kind).sort(newestFirst).slice(0, limit);
        return { body: alerts.map(publicAlert) };
      }),
  });
}

/** An alert as served: its key becomes `id`; storage attributes stay inside. */
export function publicAlert(item: Item): Item {
  const { key, expires: _expires, ...alert } = item;
  return { id: key, ...alert };
}

function newestFirst(a: Item, b: Item): number {
  return Date.parse(String(b.time)) - Date.parse(String(a.time)) || String(b.key).localeCompare(String(a.key));
}
