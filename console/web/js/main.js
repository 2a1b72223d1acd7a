/* global document, window, URLSearchParams */
/**
 * The console page: wires the panels to the runtime. Alerts arrive by Server-Sent Events; the
 * rest is polled every 2 s (each poll waits for its previous one, so a slow runtime is never
 * flooded).
 */
import { getJson, query } from './api.js';
import { AlertFeed } from './alerts.js';
import { AqiChart } from './chart.js';
import { CityView } from './city.js';
import { clock, h, number, replace } from './dom.js';
import { DeadLetterView, StatsView } from './health.js';
import { JourneyView } from './journey.js';

const POLL_MS = 2000;
const CHART_RANGE_MS = 15 * 60_000;
/** Readings are fetched again this far back in event time, to pick up the late ones. */
const LATE_READINGS_MS = 90_000;

const $ = (id) => document.getElementById(id);

let selected = new URLSearchParams(window.location.hash.slice(1)).get('location') ?? undefined;
let readings = new Map();
let readingsFor;
let readingsThrough = 0;

const city = new CityView($('city-map'), $('location-list'), $('aqi-legend'), selectLocation);
const chart = new AqiChart($('chart'));
const stats = new StatsView($('stats'), $('sparkline'));
const deadLetters = new DeadLetterView($('dead-list'), $('dead-count'), $('redrive-all'), { onChanged: refreshDeadLetters, toast });
const journey = new JourneyView($('journey'), $('journey-note'));
const feed = new AlertFeed($('alert-feed'), $('alert-filter'), {
  onSelect: (alert) => {
    feed.select(alert);
    void journey.show(alert);
  },
  onStatus: (state) => setPill($('stream-pill'), state === 'live' ? 'ok' : state === 'closed' ? 'bad' : 'warn', state === 'live' ? 'Alerts live' : state === 'closed' ? 'Alert stream closed' : 'Alert stream reconnecting…'),
  onAlert: () => void refreshLocations(),
});
$('chart-location').addEventListener('change', (e) => selectLocation(e.target.value));

function setPill(pill, state, text) {
  pill.dataset.state = state;
  pill.querySelector('.pill-text').textContent = text;
}

let toastTimer;
function toast(message, isError = false) {
  const element = $('toast');
  element.textContent = message;
  element.dataset.kind = isError ? 'error' : 'info';
  element.classList.add('visible');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => element.classList.remove('visible'), 3500);
}

function selectLocation(location) {
  if (!location || location === selected) return;
  selected = location;
  window.history.replaceState(null, '', `#${new URLSearchParams({ location })}`);
  city.select(location);
  $('chart-location').value = location;
  void refreshChart();
}

async function refreshHealth() {
  try {
    const [health, current] = await Promise.all([getJson('/healthz').catch((error) => ({ ok: false, error })), getJson('/stats')]);
    $('app-name').textContent = health.app ?? 'air-quality';
    setPill($('health-pill'), health.ok ? 'ok' : 'bad', health.ok ? 'Healthy' : 'Unhealthy');
    stats.update(current);
    $('header-rate').textContent = number(current.eventsPerSecond);
    $('header-updated').textContent = `updated ${clock(Date.now())}`;
  } catch {
    setPill($('health-pill'), 'bad', 'Offline');
  }
}

async function refreshLocations() {
  const locations = await getJson('/locations');
  city.update(locations);
  const names = locations.map((l) => l.location).sort();
  const select = $('chart-location');
  if ([...select.options].map((o) => o.value).join('\n') !== names.join('\n')) {
    replace(select, ...names.map((name) => h('option', { value: name, text: name })));
  }
  if (!selected || !names.includes(selected)) {
    const worst = [...locations].sort((a, b) => (b.aqi ?? -1) - (a.aqi ?? -1))[0];
    if (worst) selectLocation(worst.location);
  } else {
    select.value = selected;
    city.select(selected);
  }
}

async function refreshChart() {
  const location = selected;
  if (!location) return;
  const now = Date.now();
  if (readingsFor !== location) {
    readings = new Map();
    readingsFor = location;
    readingsThrough = 0;
    chart.update({ readings: [], windows: [], message: `Loading ${location}…` });
  }
  const since = Math.max(now - CHART_RANGE_MS, readingsThrough - LATE_READINGS_MS);
  const [fresh, windows] = await Promise.all([
    getJson(`/readings${query({ location, since: new Date(since).toISOString(), limit: 5000 })}`),
    getJson(`/windows${query({ location, size: 1, limit: 20 })}`),
  ]);
  if (location !== selected) return;
  for (const reading of fresh) {
    readings.set(`${reading.time}#${reading.deviceId}`, reading);
    readingsThrough = Math.max(readingsThrough, Date.parse(reading.time));
  }
  for (const [key, reading] of readings) if (Date.parse(reading.time) < now - CHART_RANGE_MS) readings.delete(key);
  const all = [...readings.values()];
  chart.update({ readings: all, windows, rangeMs: CHART_RANGE_MS, message: '' });
  const sensors = new Set(all.map((r) => r.deviceId)).size;
  $('chart-note').textContent = `${location}: ${all.length} readings from ${sensors} sensor${sensors === 1 ? '' : 's'}, last 15 minutes`;
}

async function refreshDeadLetters() {
  deadLetters.update(await getJson('/admin/dead-letters'));
}

/** Runs `task` now and every `ms` after it settles; a failure shows in the console's log only. */
function poll(task, ms) {
  const run = async () => {
    try {
      await task();
    } catch (error) {
      console.warn(`console: ${error.message}`);
    }
    setTimeout(run, ms);
  };
  void run();
}

if (selected) $('chart-location').append(h('option', { value: selected, text: selected }));
void feed.start();
poll(refreshHealth, POLL_MS);
poll(refreshLocations, POLL_MS);
poll(refreshChart, POLL_MS * 2);
poll(refreshDeadLetters, POLL_MS);
