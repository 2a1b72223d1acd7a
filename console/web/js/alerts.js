/* global EventSource */
/**
 * The live alert feed: the stored alerts first (GET /alerts), then each alert as it is raised
 * (Server-Sent Events from GET /alerts/stream), newest first. An alert from the stream also
 * carries the id of the event that raised it, which its journey starts from.
 */
import { getJson } from './api.js';
import { categoryNamed } from './aqi.js';
import { clock, h, pollutantName, replace } from './dom.js';

const MAX_ALERTS = 200;
const KIND_LABELS = { category: 'Category', sustained: 'Sustained', anomaly: 'Anomaly' };
const ANOMALY_COLOR = '#475569';

/** Alert ids are unique per location only. */
export function alertRef(alert) {
  return `${alert.location}\u0000${alert.id}`;
}

export class AlertFeed {
  constructor(listElement, filterElement, { onSelect, onStatus, onAlert }) {
    this.list = listElement;
    this.onSelect = onSelect;
    this.onStatus = onStatus;
    this.onAlert = onAlert;
    /** Newest first; `order` is when the console saw the alert, so live ones come on top. */
    this.alerts = [];
    this.kind = '';
    this.selected = undefined;
    this.sequence = 0;
    this.filterButtons = [...filterElement.querySelectorAll('button')];
    for (const button of this.filterButtons) {
      button.addEventListener('click', () => {
        this.kind = button.dataset.kind;
        for (const b of this.filterButtons) b.setAttribute('aria-pressed', String(b === button));
        this.render();
      });
    }
  }

  async start() {
    this.connect();
    await this.backfill();
  }

  connect() {
    this.onStatus('connecting');
    const source = new EventSource('/alerts/stream');
    source.addEventListener('open', () => {
      this.onStatus('live');
      // Alerts raised while the stream was down are in the table: fetch them again.
      if (this.connectedBefore) void this.backfill();
      this.connectedBefore = true;
    });
    source.addEventListener('error', () => this.onStatus(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting'));
    source.addEventListener('alert', (message) => {
      const alert = JSON.parse(message.data);
      this.add([{ ...alert, eventId: message.lastEventId }], true);
      this.onAlert(alert);
    });
  }

  async backfill() {
    try {
      const stored = await getJson('/alerts?limit=100');
      this.add([...stored].reverse(), false);
    } catch (error) {
      this.onStatus('reconnecting', error.message);
    }
  }

  add(alerts, live) {
    for (const alert of alerts) {
      const existing = this.alerts.find((a) => alertRef(a) === alertRef(alert));
      if (existing) {
        existing.eventId ??= alert.eventId;
        continue;
      }
      this.alerts.push({ ...alert, order: ++this.sequence, fresh: live });
    }
    this.alerts.sort((a, b) => b.order - a.order);
    this.alerts.length = Math.min(this.alerts.length, MAX_ALERTS);
    this.render();
  }

  select(alert) {
    this.selected = alertRef(alert);
    this.render();
  }

  render() {
    const shown = this.alerts.filter((a) => !this.kind || a.kind === this.kind);
    if (shown.length === 0) {
      replace(this.list, h('li', { class: 'empty', text: this.alerts.length ? 'No alerts of this kind.' : 'No alerts yet. They appear here the moment they are raised.' }));
      return;
    }
    replace(this.list, ...shown.map((alert) => this.item(alert)));
    for (const alert of shown) alert.fresh = false;
  }

  item(alert) {
    const category = alert.kind === 'anomaly' ? undefined : categoryNamed(alert.category);
    const stripe = category?.color ?? ANOMALY_COLOR;
    const arrow = alert.direction === 'up' ? ' ↑' : alert.direction === 'down' ? ' ↓' : '';
    const tags = [
      category ? h('span', { class: 'chip chip-category', style: `background:${category.color};color:${category.ink}`, text: category.name }) : null,
      alert.kind === 'anomaly' ? h('span', { class: 'chip', text: `${alert.anomaly} · ${alert.deviceId}` }) : null,
      alert.pollutant ? h('span', { class: 'chip', text: pollutantName(alert.pollutant) }) : null,
      typeof alert.aqi === 'number' ? h('span', { class: 'chip', text: `AQI ${alert.aqi}` }) : null,
    ];
    return h('li', {},
      h('button', { type: 'button', class: `alert${alertRef(alert) === this.selected ? ' selected' : ''}${alert.fresh ? ' fresh' : ''}`, dataset: { id: alert.id, kind: alert.kind, eventId: alert.eventId ?? '' }, onclick: () => this.onSelect(alert) },
        h('span', { class: 'alert-stripe', style: `background:${stripe}` }),
        h('span', { class: 'alert-body' },
          h('span', { class: 'alert-top' },
            h('span', { class: `kind kind-${alert.kind}`, text: `${KIND_LABELS[alert.kind] ?? alert.kind}${arrow}` }),
            h('span', { class: 'alert-location', text: alert.location }),
            h('time', { class: 'alert-time', datetime: alert.time, title: alert.time, text: clock(alert.time) })),
          h('span', { class: 'alert-message', text: alert.message }),
          h('span', { class: 'alert-tags' }, ...tags))));
  }
}
