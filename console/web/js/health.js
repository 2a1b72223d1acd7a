/**
 * Pipeline health (GET /stats) as figures and an events/s sparkline, and the dead letters
 * (GET /admin/dead-letters) with a Redrive button each and Redrive all.
 */
import { postJson } from './api.js';
import { clock, duration, h, number, replace, s, shortId } from './dom.js';

const HISTORY = 150; // samples: 5 minutes at one per 2 s

export class StatsView {
  constructor(statsElement, sparkElement) {
    this.element = statsElement;
    this.spark = sparkElement;
    this.history = [];
    this.update(undefined);
  }

  update(stats) {
    if (stats) {
      this.history.push(stats.eventsPerSecond);
      if (this.history.length > HISTORY) this.history.shift();
    }
    const backlog = stats ? Object.entries(stats.backlog) : [];
    const waiting = backlog.reduce((n, [, v]) => n + v, 0);
    const busiest = backlog.sort((a, b) => b[1] - a[1])[0];
    const latency = stats?.ingestToAlert;
    const tile = (id, label, value, sub, state = '') =>
      h('div', { class: `stat ${state}`, dataset: { stat: id } }, h('span', { class: 'stat-label', text: label }), h('span', { class: 'stat-value', text: value }), h('span', { class: 'stat-sub', text: sub }));
    replace(this.element,
      tile('events', 'Events / s', stats ? number(stats.eventsPerSecond) : '–', stats ? `invocations, last ${Math.round(stats.windowSeconds)} s` : 'waiting for /stats'),
      tile('p50', 'Ingest → alert p50', duration(latency?.p50Ms), latency ? `${latency.alerts} alerts, last 5 min` : ''),
      tile('p99', 'Ingest → alert p99', duration(latency?.p99Ms), latency?.maxMs != null ? `max ${duration(latency.maxMs)}` : 'no alerts yet'),
      tile('backlog', 'Backlog', stats ? number(waiting) : '–', waiting > 0 && busiest ? `most at ${busiest[0]}` : 'all caught up', waiting > 1000 ? 'warn' : ''),
      tile('readings', 'Readings / s', stats ? number(stats.readingsPerSecond) : '–', 'assessed'),
      tile('errors', 'Errors', stats ? number(stats.errors.total) : '–', stats ? `${number(stats.errors.perSecond)} / s now` : '', stats?.errors.perSecond > 0 ? 'warn' : ''),
      tile('retries', 'Retries', stats ? number(stats.retries.total) : '–', stats ? `${number(stats.retries.perSecond)} / s now` : '', stats?.retries.perSecond > 0 ? 'warn' : ''),
      tile('dead', 'Dead letters', stats ? number(stats.deadLetters.stored) : '–', stats ? `${number(stats.deadLetters.total)} since start` : '', stats?.deadLetters.stored > 0 ? 'bad' : ''),
    );
    this.renderSparkline();
  }

  renderSparkline() {
    const width = this.spark.clientWidth || 600;
    const height = Math.max(40, this.spark.clientHeight - 22);
    const top = Math.max(1, ...this.history);
    const step = width / (HISTORY - 1);
    const offset = (HISTORY - this.history.length) * step;
    const points = this.history.map((v, i) => `${(offset + i * step).toFixed(1)},${(height - 4 - (v / top) * (height - 12)).toFixed(1)}`);
    const line = points.length ? `M${points.join('L')}` : '';
    const area = points.length ? `${line}L${width},${height}L${offset.toFixed(1)},${height}Z` : '';
    replace(this.spark,
      h('div', { class: 'sparkline-head' }, h('span', { text: 'Events / s, last 5 minutes' }), h('span', { class: 'muted', text: this.history.length ? `peak ${number(Math.max(...this.history))}` : '' })),
      h('div', { class: 'sparkline-plot' },
        s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, 'aria-hidden': 'true' },
          s('path', { d: area, class: 'spark-area' }),
          s('path', { d: line, class: 'spark-line' }))));
  }
}

export class DeadLetterView {
  constructor(listElement, countElement, redriveAllButton, { onChanged, toast }) {
    this.list = listElement;
    this.count = countElement;
    this.redriveAll = redriveAllButton;
    this.onChanged = onChanged;
    this.toast = toast;
    this.letters = [];
    this.redriveAll.addEventListener('click', () => this.redrive('/admin/dead-letters-redrive', this.redriveAll, 'Redriving…'));
    this.update([]);
  }

  update(letters) {
    // Redrawn only when the list changed, so a click is never lost to a redraw under the pointer.
    const signature = letters.map((l) => l.id).join();
    if (signature === this.signature) return;
    this.signature = signature;
    this.letters = letters;
    this.count.textContent = String(letters.length);
    this.redriveAll.disabled = letters.length === 0;
    if (letters.length === 0) {
      replace(this.list, h('p', { class: 'empty', text: 'No dead letters. An event that fails every attempt, or fails permanently, lands here with its errors.' }));
      return;
    }
    replace(this.list, h('ul', { class: 'dead-rows' }, ...letters.slice(0, 50).map((letter) => this.row(letter))),
      letters.length > 50 ? h('p', { class: 'muted', text: `and ${letters.length - 50} more` }) : null);
  }

  row(letter) {
    const last = letter.attempts[letter.attempts.length - 1];
    const button = h('button', { type: 'button', class: 'button button-small', text: 'Redrive', 'aria-label': `Redrive dead letter ${letter.id}` });
    button.addEventListener('click', () => this.redrive(`/admin/dead-letters/${encodeURIComponent(letter.id)}/redrive`, button, '…'));
    return h('li', { class: 'dead-row', dataset: { id: letter.id } },
      h('div', { class: 'dead-main' },
        h('div', { class: 'dead-top' },
          h('span', { class: 'fn-chip', text: letter.fn }),
          h('span', { class: 'dead-type', text: letter.event.type }),
          h('span', { class: 'muted', title: letter.event.id, text: `event ${shortId(letter.event.id)}` })),
        h('div', { class: 'dead-error', title: last ? `${last.error.name}: ${last.error.message}` : '', text: last ? `${last.error.name}: ${last.error.message}` : 'no attempt recorded' }),
        h('div', { class: 'dead-meta muted', text: `${letter.attempts.length} attempt${letter.attempts.length === 1 ? '' : 's'} · dead at ${clock(letter.deadAt)}` })),
      button);
  }

  async redrive(path, button, busyText) {
    const text = button.textContent;
    button.disabled = true;
    button.textContent = busyText;
    try {
      const { redriven } = await postJson(path);
      this.toast(`Redrove ${redriven} event${redriven === 1 ? '' : 's'} to ${redriven === 1 ? 'its function' : 'their functions'}.`);
    } catch (error) {
      this.toast(`Redrive failed: ${error.message}`, true);
    } finally {
      button.textContent = text;
      button.disabled = false;
      await this.onChanged();
    }
  }
}
