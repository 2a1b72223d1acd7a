/* global ResizeObserver */
/**
 * The city view: a schematic map with one marker per location, filled with the EPA colour of its
 * latest minute's AQI category and showing the AQI; beside it the locations ranked by AQI.
 * Locations carry no coordinates, so known names get fixed places on the map and others take the
 * free ones (a grid when there are more locations than places).
 */
import { CATEGORIES, categoryOf, NO_DATA } from './aqi.js';
import { h, minute, pollutantName, replace, s } from './dom.js';

/** Places on the map as fractions of its width and height, for the simulator's location names first. */
const PLACES = {
  harbour: [0.13, 0.7],
  downtown: [0.42, 0.3],
  'old-town': [0.6, 0.68],
  university: [0.77, 0.27],
  airport: [0.89, 0.72],
  riverside: [0.3, 0.6],
  'industrial-park': [0.93, 0.32],
  hillside: [0.6, 0.13],
  market: [0.21, 0.25],
  stadium: [0.44, 0.84],
};
const SPARE_PLACES = [[0.06, 0.36], [0.76, 0.88], [0.52, 0.5], [0.3, 0.9]];
const RADIUS = 27;

function layout(names) {
  const known = Object.keys(PLACES);
  const free = [...known.filter((n) => !names.includes(n)).map((n) => PLACES[n]), ...SPARE_PLACES];
  const places = new Map();
  if (names.length > known.length + SPARE_PLACES.length) {
    const columns = Math.ceil(Math.sqrt(names.length * 1.6));
    const rows = Math.ceil(names.length / columns);
    names.forEach((name, i) => places.set(name, [(i % columns + 0.5) / columns, (Math.floor(i / columns) + 0.4) / rows]));
    return places;
  }
  for (const name of names) places.set(name, PLACES[name] ?? free.shift());
  return places;
}

/** The map's backdrop: sea, river, parks and roads in a 100 x 100 box stretched to the panel. */
function backdrop() {
  const road = (d) => s('path', { d, class: 'map-road', 'vector-effect': 'non-scaling-stroke' });
  return s('svg', { class: 'map-backdrop', viewBox: '0 0 100 100', preserveAspectRatio: 'none', 'aria-hidden': 'true' },
    s('rect', { x: 0, y: 0, width: 100, height: 100, class: 'map-land' }),
    s('ellipse', { cx: 70, cy: 42, rx: 9, ry: 7, class: 'map-park' }),
    s('ellipse', { cx: 25, cy: 40, rx: 7, ry: 9, class: 'map-park' }),
    road('M0 48 L100 40'), road('M35 0 L40 100'), road('M68 0 L73 100'), road('M15 100 L55 0'), road('M50 100 L100 62'),
    s('path', { d: 'M100 52 C84 56 76 46 62 52 S38 60 24 66 S10 74 0 80', class: 'map-river', 'vector-effect': 'non-scaling-stroke' }),
    s('path', { d: 'M0 58 C5 64 3 78 8 88 S6 96 7 100 L0 100 Z', class: 'map-sea' }),
  );
}

export class CityView {
  constructor(mapElement, listElement, legendElement, onSelect) {
    this.map = mapElement;
    this.list = listElement;
    this.onSelect = onSelect;
    this.locations = [];
    this.selected = undefined;
    replace(legendElement, ...CATEGORIES.map((c) =>
      h('span', { class: 'legend-item', style: `border-top-color:${c.color}`, title: c.name },
        h('span', { class: 'legend-name', text: c.short }), h('span', { class: 'muted', text: `${c.min}–${c.max}` }))));
    new ResizeObserver(() => this.renderMap()).observe(this.map);
  }

  update(locations) {
    // Redrawn only when something changed, so a click is never lost to a redraw under the pointer.
    const sorted = [...locations].sort((a, b) => String(a.location).localeCompare(String(b.location)));
    if (JSON.stringify(sorted) === JSON.stringify(this.locations)) return;
    this.locations = sorted;
    this.renderMap();
    this.renderList();
  }

  select(name) {
    if (name === this.selected) return;
    this.selected = name;
    this.renderMap();
    this.renderList();
  }

  renderMap() {
    const width = this.map.clientWidth;
    const height = this.map.clientHeight;
    if (!width || !height) return;
    const places = layout(this.locations.map((l) => l.location));
    const markers = this.locations.map((entry) => {
      const [fx, fy] = places.get(entry.location);
      const x = Math.round(Math.min(width - RADIUS - 4, Math.max(RADIUS + 4, fx * width)));
      const y = Math.round(Math.min(height - RADIUS - 38, Math.max(RADIUS + 8, fy * height)));
      const category = typeof entry.aqi === 'number' ? categoryOf(entry.aqi) : NO_DATA;
      const selected = entry.location === this.selected;
      const title = typeof entry.aqi === 'number'
        ? `${entry.location}: AQI ${entry.aqi}, ${category.name} (${pollutantName(entry.pollutant)}), minute from ${minute(entry.time)}, ${entry.readings} readings`
        : `${entry.location}: no readings yet`;
      return s('g', { class: `marker${selected ? ' selected' : ''}`, transform: `translate(${x} ${y})`, tabindex: 0, role: 'button', 'aria-label': title, dataset: { location: entry.location, aqi: entry.aqi ?? '' }, onclick: () => this.onSelect(entry.location), onkeydown: (e) => (e.key === 'Enter' || e.key === ' ') && this.onSelect(entry.location) },
        s('title', { text: title }),
        s('circle', { r: RADIUS + 6, class: 'marker-halo' }),
        s('circle', { r: RADIUS, fill: category.color, class: 'marker-dot' }),
        s('text', { class: 'marker-aqi', y: 1, fill: category.ink, text: typeof entry.aqi === 'number' ? String(entry.aqi) : '–' }),
        s('text', { class: 'marker-name', y: RADIUS + 17, text: entry.location }),
        s('text', { class: 'marker-category', y: RADIUS + 31, text: category.short }),
      );
    });
    replace(this.map, backdrop(), s('svg', { class: 'map-markers', width, height, viewBox: `0 0 ${width} ${height}` }, ...markers));
    if (this.locations.length === 0) this.map.append(h('p', { class: 'empty map-empty', text: 'No locations yet: they appear with their first reading.' }));
  }

  renderList() {
    const ranked = [...this.locations].sort((a, b) => (b.aqi ?? -1) - (a.aqi ?? -1) || String(a.location).localeCompare(String(b.location)));
    replace(this.list, ...ranked.map((entry) => {
      const category = typeof entry.aqi === 'number' ? categoryOf(entry.aqi) : NO_DATA;
      return h('li', {},
        h('button', { type: 'button', class: `location-row${entry.location === this.selected ? ' selected' : ''}`, dataset: { location: entry.location }, onclick: () => this.onSelect(entry.location) },
          h('span', { class: 'aqi-badge', style: `background:${category.color};color:${category.ink}`, text: typeof entry.aqi === 'number' ? String(entry.aqi) : '–' }),
          h('span', { class: 'location-text' },
            h('span', { class: 'location-top' },
              h('span', { class: 'location-name', text: entry.location }),
              h('span', { class: 'location-when', text: typeof entry.aqi === 'number' ? `${pollutantName(entry.pollutant)} · ${minute(entry.time)}` : '' })),
            h('span', { class: 'location-meta', title: category.name, text: typeof entry.aqi === 'number' ? category.name : 'no readings yet' }))));
    }));
  }
}
