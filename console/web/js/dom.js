/* global document */
/** Small DOM and formatting helpers: the console uses no framework (nothing to download or build). */

const SVG_NS = 'http://www.w3.org/2000/svg';

function assign(element, props) {
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') element.setAttribute('class', value);
    else if (name === 'text') element.textContent = value;
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
  return element;
}

/** An HTML element: h('li', { class: 'x', onclick }, 'text', child). */
export function h(tag, props, ...children) {
  return append(assign(document.createElement(tag), props), children);
}

/** An SVG element, the same way. */
export function s(tag, props, ...children) {
  return append(assign(document.createElementNS(SVG_NS, tag), props), children);
}

/** Replaces an element's children. */
export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

const clockFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
const minuteFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', hour12: false });

/** 14:05:09 */
export function clock(time) {
  return clockFormat.format(new Date(time));
}

/** 14:05 */
export function minute(time) {
  return minuteFormat.format(new Date(time));
}

/** A duration: "0.42 ms", "38 ms", "1.25 s"; "–" when unknown. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const smallNumberFormat = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 3 });

/** A figure for people: one decimal at most, three significant digits below 1 (ppm values). */
export function number(n) {
  if (typeof n === 'number' && Math.abs(n) < 1 && n !== 0) return smallNumberFormat.format(n);
  return n === null || n === undefined ? '–' : numberFormat.format(n);
}

/** A long id cut to its first 8 characters, for display (the full id goes in a title). */
export function shortId(id) {
  const text = String(id);
  return text.length > 12 ? `${text.slice(0, 8)}…` : text;
}

const POLLUTANT_NAMES = { pm25: 'PM2.5', pm10: 'PM10', o3: 'O₃', no2: 'NO₂', co: 'CO' };

export function pollutantName(p) {
  return POLLUTANT_NAMES[p] ?? p ?? '';
}
