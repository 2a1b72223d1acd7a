/**
 * An alert's journey (GET /admin/journey/:id): the reading it came from, and every event on the
 * way from the ingest to the alert with the function invocations that handled it, on one time
 * axis starting at the ingest. Bars are handler run times; the gaps between them are waiting
 * (the log, the group commit, the consumer picking the event up).
 */
import { getJson, query } from './api.js';
import { categoryNamed } from './aqi.js';
import { clock, duration, h, number, pollutantName, replace, shortId } from './dom.js';

const POLLUTANTS = ['pm25', 'pm10', 'o3', 'no2', 'co'];
const UNITS = { pm25: 'µg/m³', pm10: 'µg/m³', o3: 'ppm', no2: 'ppb', co: 'ppm' };

function eventTime(event) {
  const t = Date.parse(event.ingesttime && !event.causationid ? event.ingesttime : event.time ?? '');
  return Number.isNaN(t) ? undefined : t;
}

export class JourneyView {
  constructor(element, noteElement) {
    this.element = element;
    this.note = noteElement;
    this.request = 0;
    replace(this.element, h('p', { class: 'empty', text: 'Select an alert in the feed to see the reading it came from and every function invocation on its way, with timings.' }));
  }

  async show(alert) {
    const request = ++this.request;
    this.note.textContent = `${alert.location}: ${alert.message}`;
    replace(this.element, h('p', { class: 'empty', text: 'Tracing the alert…' }));
    try {
      // An alert from the stream knows the event that raised it; a stored one is found by id and location.
      const path = alert.eventId ? encodeURIComponent(alert.eventId) : `${encodeURIComponent(alert.id)}${query({ location: alert.location })}`;
      const journey = await getJson(`/admin/journey/${path}`);
      if (request === this.request) this.render(alert, journey);
    } catch (error) {
      if (request === this.request) replace(this.element, h('p', { class: 'empty error-text', text: `No journey for this alert: ${error.message}` }));
    }
  }

  render(alert, journey) {
    const { steps } = journey;
    const starts = steps.flatMap((step) => [eventTime(step.event), ...step.invocations.map((i) => i.startedAt)]).filter((t) => t !== undefined);
    const ends = steps.flatMap((step) => step.invocations.map((i) => i.startedAt + i.durationMs));
    const t0 = Math.min(...starts);
    const span = Math.max(1, Math.max(...starts, ...ends) - t0);
    const pct = (t) => `${(((t - t0) / span) * 100).toFixed(3)}%`;
    const invocations = steps.reduce((n, step) => n + step.invocations.length, 0);

    const rows = [];
    steps.forEach((step, index) => {
      const at = eventTime(step.event);
      rows.push(h('div', { class: `journey-row journey-event found-${step.found}`, dataset: { eventId: step.event.id, type: step.event.type } },
        h('div', { class: 'journey-label' },
          h('span', { class: 'step-number', text: String(index + 1) }),
          h('span', { class: 'journey-type', text: step.found === 'missing' ? 'earlier event' : step.event.type }),
          h('span', { class: 'muted journey-id', title: step.event.id, text: describeEvent(step) })),
        h('div', { class: 'journey-offset', text: at === undefined ? '' : `+${duration(at - t0)}` }),
        h('div', { class: 'journey-track' }, at === undefined ? null : h('span', { class: 'journey-diamond', style: `left:${pct(at)}`, title: `${step.event.type} at ${clock(at)}` })),
        h('div', { class: 'journey-duration muted', text: step.found === 'log' ? 'in log' : step.found === 'journal' ? 'journal' : 'forgotten' })));
      for (const invocation of step.invocations) {
        const title = `${invocation.fn}, attempt ${invocation.attempt}: ${invocation.outcome}${invocation.error ? ` (${invocation.error})` : ''}, ran ${duration(invocation.durationMs)}${invocation.emitted.length ? `, emitted ${invocation.emitted.length}` : ''}`;
        rows.push(h('div', { class: `journey-row journey-invocation outcome-${invocation.outcome}`, dataset: { fn: invocation.fn, outcome: invocation.outcome }, title },
          h('div', { class: 'journey-label' },
            h('span', { class: 'fn-chip', text: invocation.fn }),
            h('span', { class: 'muted', text: `attempt ${invocation.attempt} · ${invocation.outcome}${invocation.emitted.length ? ` · emitted ${invocation.emitted.length}` : ''}` })),
          h('div', { class: 'journey-offset', text: `+${duration(invocation.startedAt - t0)}` }),
          h('div', { class: 'journey-track' }, h('span', { class: 'journey-bar', style: `left:${pct(invocation.startedAt)};width:max(3px, ${((invocation.durationMs / span) * 100).toFixed(3)}%)` })),
          h('div', { class: 'journey-duration', text: duration(invocation.durationMs) })));
        if (invocation.error) rows.push(h('div', { class: 'journey-error', text: invocation.error }));
      }
    });

    replace(this.element,
      h('div', { class: 'journey-summary' },
        summaryFigure('Ingest → alert', journey.ingestToEventMs !== undefined ? duration(journey.ingestToEventMs) : '–'),
        summaryFigure('Events', String(steps.length)),
        summaryFigure('Invocations', String(invocations)),
        summaryFigure('Handler time', duration(steps.reduce((n, step) => n + step.invocations.reduce((m, i) => m + i.durationMs, 0), 0))),
        summaryFigure('Trace', journey.traceId ? shortId(journey.traceId) : '–', journey.traceId)),
      journey.complete ? null : h('p', { class: 'warning', text: 'The start of this journey is no longer in the log or the journal: the runtime keeps the newest events and invocations only.' }),
      h('div', { class: 'journey-cards' }, readingCard(steps), alertCard(alert)),
      h('div', { class: 'journey-table', role: 'table', 'aria-label': 'Events and invocations on the way to the alert' },
        h('div', { class: 'journey-row journey-header' },
          h('div', { text: 'Event / function' }), h('div', { class: 'journey-offset', text: 'start' }),
          h('div', { class: 'journey-track-head' }, h('span', { text: clock(t0) }), h('span', { text: `+${duration(span)}` })),
          h('div', { class: 'journey-duration', text: 'ran' })),
        ...rows));
  }
}

function summaryFigure(label, value, title) {
  return h('div', { class: 'summary-figure', title }, h('span', { class: 'stat-label', text: label }), h('span', { class: 'summary-value', text: value }));
}

function describeEvent(step) {
  if (step.found === 'missing') return `${shortId(step.event.id)}: no longer kept`;
  const event = step.event;
  if (event.type === 'petrel.http.request') return `${event.subject ?? ''} · ${shortId(event.id)}`;
  if (event.type === 'petrel.mqtt.message') return `${event.subject ?? ''} · ${shortId(event.id)}`;
  return `${event.subject ? `${event.subject} · ` : ''}${shortId(event.id)}`;
}

/** The reading the journey started from: the accepted reading's data. */
function readingCard(steps) {
  const accepted = steps.find((s) => s.event.type === 'aq.reading.accepted' && s.event.data);
  if (!accepted) {
    return h('div', { class: 'card' }, h('h3', { text: 'Reading' }), h('p', { class: 'muted', text: steps.some((s) => s.event.type === 'aq.location.tick') ? 'Raised by the per-minute tick of a silent location, not by a reading.' : 'The reading is no longer in the log.' }));
  }
  const reading = accepted.event.data;
  const values = POLLUTANTS.filter((p) => typeof reading[p] === 'number');
  return h('div', { class: 'card', dataset: { card: 'reading' } },
    h('h3', { text: 'Reading' }),
    h('dl', { class: 'facts' },
      fact('Sensor', reading.deviceId), fact('Location', reading.location), fact('Time', `${clock(reading.time)}`),
      ...values.map((p) => fact(pollutantName(p), `${number(reading[p])} ${UNITS[p]}`))));
}

function alertCard(alert) {
  const category = alert.category ? categoryNamed(alert.category) : undefined;
  return h('div', { class: 'card', dataset: { card: 'alert' } },
    h('h3', {}, 'Alert ', category ? h('span', { class: 'chip chip-category', style: `background:${category.color};color:${category.ink}`, text: category.name }) : null),
    h('p', { class: 'card-message', text: alert.message }),
    h('dl', { class: 'facts' }, fact('Kind', alert.kind), fact('Location', alert.location), fact('Time', clock(alert.time)), alert.pollutant ? fact('Pollutant', pollutantName(alert.pollutant)) : null));
}

function fact(label, value) {
  return h('div', { class: 'fact' }, h('dt', { text: label }), h('dd', { text: String(value ?? '–') }));
}
