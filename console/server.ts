/**
 * Serves the web console of the air-quality app on the embedded runtime: the page at `/`, its
 * assets under `/console/` (plain HTML, CSS and ES modules from console/web: no build step), and
 *
 *   GET /admin/journey/:id[?location=]
 *                            the journey of an event: the chain of events that caused it back to
 *                            the ingest, each with the invocations that handled it (journal.ts).
 *                            `:id` is an event id, or an alert's id as GET /alerts serves it with
 *                            its `location` (alert ids are unique per location only).
 *
 * The page itself reads the app's endpoints (/locations, /readings, /windows, /alerts,
 * /alerts/stream, /stats) and the runtime's (/healthz, /admin/dead-letters...).
 */
import express, { type Router } from 'express';
import { fileURLToPath } from 'node:url';
import type { CloudEvent } from '../core/event.js';
import { journey, type EventLogReader, type InvocationJournal } from '../adapters/local/journal.js';
import { ALERT_RAISED } from '../handlers/air-quality/alerting.js';

/** What the console needs from the runtime (LocalRuntime has it). */
export interface ConsoleSource extends EventLogReader {
  onEvent(type: string, listener: (event: CloudEvent) => void): () => void;
}

export const WEB_DIR = fileURLToPath(new URL('./web/', import.meta.url));

/** Alert ids remembered to find their events by: as many as the journal holds invocations. */
const REMEMBERED_ALERTS = 10_000;

/**
 * Mounts the console's routes on `router` (pass it as the ingress `extend`); returns a function
 * that stops its subscription to the runtime.
 */
export function mountConsole(router: Router, source: ConsoleSource, journal: InvocationJournal): () => void {
  // GET /alerts serves an alert's table key as its id, not the id of the event that raised it.
  const alertEvents = new Map<string, string>();
  const unsubscribe = source.onEvent(ALERT_RAISED, (event) => {
    const { key, location } = (event.data ?? {}) as { key?: unknown; location?: unknown };
    if (typeof key !== 'string' || typeof location !== 'string') return;
    alertEvents.set(alertRef(location, key), event.id);
    if (alertEvents.size > REMEMBERED_ALERTS) alertEvents.delete(alertEvents.keys().next().value!);
  });

  const assets = express.static(WEB_DIR, { index: false, fallthrough: false, setHeaders: (res) => res.setHeader('cache-control', 'no-cache') });
  router.get('/', (_req, res) => res.sendFile('index.html', { root: WEB_DIR, headers: { 'cache-control': 'no-cache' } }));
  router.use('/console', assets);
  router.get('/admin/journey/:id', (req, res) => {
    const id = req.params.id;
    const location = typeof req.query.location === 'string' ? req.query.location : undefined;
    const found = journey((location !== undefined && alertEvents.get(alertRef(location, id))) || id, journal, source);
    if (!found) {
      res.status(404).json({ error: `no event or alert with id "${id}" in the log or the journal (it keeps the last ${journal.capacity} invocations)` });
      return;
    }
    res.json(found);
  });
  return unsubscribe;
}

function alertRef(location: string, key: string): string {
  return `${location}\u0000${key}`;
}
