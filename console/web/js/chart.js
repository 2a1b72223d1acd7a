/* global ResizeObserver */
/**
 * AQI over time for one location, drawn as SVG in pixels (so text keeps its size): each sensor
 * reading as a dot, the 1-minute AQI as a line with markers in its category colour, over the
 * EPA category bands.
 */
import { CATEGORIES, categoryOf } from './aqi.js';
import { minute, pollutantName, replace, s } from './dom.js';

const MARGIN = { top: 10, right: 14, bottom: 26, left: 42 };
const Y_TOPS = [100, 150, 200, 300, 400, 500];
const Y_TICKS = [0, 50, 100, 150, 200, 300, 400, 500];
const TICK_MINUTES = [1, 2, 5, 10, 15, 30, 60];
const MINUTE_MS = 60_000;
const MIN_RANGE_MS = 5 * MINUTE_MS;

export class AqiChart {
  constructor(element) {
    this.element = element;
    this.data = { readings: [], windows: [], rangeMs: 15 * MINUTE_MS, message: 'Select a location.' };
    new ResizeObserver(() => this.render()).observe(element);
  }

  /**
   * readings: GET /readings items; windows: GET /windows?size=1 items; rangeMs: the most to show
   * (less while the data is younger, down to 5 minutes); message: shown instead when set.
   */
  update(data) {
    this.data = { ...this.data, ...data };
    this.render();
  }

  render() {
    const width = this.element.clientWidth;
    const height = this.element.clientHeight;
    if (!width || !height) return;
    const { readings, windows, message } = this.data;
    const plotW = width - MARGIN.left - MARGIN.right;
    const plotH = height - MARGIN.top - MARGIN.bottom;
    const latest = Math.max(Date.now(), ...readings.map((r) => Date.parse(r.time)), ...windows.map((w) => Date.parse(w.end)));
    const earliest = Math.min(...readings.map((r) => Date.parse(r.time)), ...windows.map((w) => Date.parse(w.start)));
    const rangeMs = Math.min(this.data.rangeMs, Math.max(MIN_RANGE_MS, latest - earliest + 1.5 * MINUTE_MS));
    const x0 = latest - rangeMs;
    const highest = Math.max(0, ...readings.map((r) => r.aqi ?? 0), ...windows.map((w) => w.aqi ?? 0));
    const yTop = Y_TOPS.find((top) => top >= highest + 5) ?? 500;
    const x = (t) => MARGIN.left + ((t - x0) / rangeMs) * plotW;
    const y = (aqi) => MARGIN.top + plotH - (Math.min(aqi, yTop) / yTop) * plotH;

    const bands = CATEGORIES.filter((c) => c.min < yTop).map((c) =>
      s('rect', { x: MARGIN.left, width: plotW, y: y(Math.min(c.max + 1, yTop)), height: y(c.min) - y(Math.min(c.max + 1, yTop)), fill: c.color, class: 'chart-band' }));
    const yTicks = Y_TICKS.filter((v) => v <= yTop).map((v) => s('g', {},
      s('line', { x1: MARGIN.left, x2: MARGIN.left + plotW, y1: y(v), y2: y(v), class: 'chart-grid' }),
      s('text', { x: MARGIN.left - 8, y: y(v), class: 'chart-label chart-label-y', text: String(v) })));
    const step = TICK_MINUTES.find((m) => (m * MINUTE_MS / rangeMs) * plotW >= 72) ?? 60;
    const xTicks = [];
    // Labels are centred on their tick: none so close to the right edge that it would be cut.
    for (let t = Math.ceil(x0 / (step * MINUTE_MS)) * step * MINUTE_MS; x(t) <= width - 18; t += step * MINUTE_MS) {
      xTicks.push(s('g', {},
        s('line', { x1: x(t), x2: x(t), y1: MARGIN.top + plotH, y2: MARGIN.top + plotH + 4, class: 'chart-axis' }),
        s('text', { x: x(t), y: MARGIN.top + plotH + 17, class: 'chart-label chart-label-x', text: minute(t) })));
    }

    const visible = readings.filter((r) => typeof r.aqi === 'number' && Date.parse(r.time) >= x0);
    const dots = visible.map((r) => `M${x(Date.parse(r.time)).toFixed(1)} ${y(r.aqi).toFixed(1)}m-2 0a2 2 0 1 0 4 0a2 2 0 1 0-4 0`).join('');
    const minutes = windows.filter((w) => typeof w.aqi === 'number' && Date.parse(w.start) >= x0 - MINUTE_MS).sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
    let line = '';
    minutes.forEach((w, i) => {
      const gap = i === 0 || Date.parse(w.start) - Date.parse(minutes[i - 1].start) > MINUTE_MS;
      line += `${gap ? 'M' : 'L'}${x(Date.parse(w.start) + MINUTE_MS / 2).toFixed(1)} ${y(w.aqi).toFixed(1)}`;
    });
    const markers = minutes.map((w) => {
      const category = categoryOf(w.aqi);
      return s('circle', { cx: x(Date.parse(w.start) + MINUTE_MS / 2), cy: y(w.aqi), r: 4.5, fill: category.color, class: `chart-marker${w.final ? '' : ' provisional'}`, dataset: { aqi: w.aqi } },
        s('title', { text: `${minute(w.start)}: AQI ${w.aqi}, ${category.name} (${pollutantName(w.pollutant)}), ${w.readings} readings${w.final ? '' : ', still open'}` }));
    });

    replace(this.element, s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'chart-svg', role: 'img', 'aria-label': `AQI over the last ${Math.round(rangeMs / MINUTE_MS)} minutes` },
      s('defs', {}, s('clipPath', { id: 'plot-clip' }, s('rect', { x: MARGIN.left, y: MARGIN.top - 6, width: plotW, height: plotH + 6 }))),
      ...bands, ...yTicks, ...xTicks,
      s('line', { x1: MARGIN.left, x2: MARGIN.left + plotW, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH, class: 'chart-axis' }),
      s('g', { 'clip-path': 'url(#plot-clip)' },
        s('path', { d: dots, class: 'chart-dots' }),
        s('path', { d: line, class: 'chart-line' }),
        ...markers),
      message || (visible.length === 0 && minutes.length === 0)
        ? s('text', { x: MARGIN.left + plotW / 2, y: MARGIN.top + plotH / 2, class: 'chart-empty', text: message || 'No readings in this period.' })
        : null,
    ));
  }
}
