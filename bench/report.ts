/** The results as rows, and the three ways they are shown: a text table, a Markdown table, an SVG chart. */

/** One figure as written to bench/results/latest.json. */
export interface ResultRow {
  scenario: string;
  metric: string;
  unit: string;
  /** Median over the repetitions. */
  petrel: number;
  /** A peer or limit measured in the same run, a published figure, or a target; null: for information. */
  baseline: number | null;
  baselineName: string | null;
  /** Oriented so that > 1 is petrel better: petrel / baseline, or baseline / petrel when lower is better. */
  ratio: number | null;
  higherIsBetter: boolean;
  /** The ratio the issue asks for, as a number and in words; null when it sets none. */
  target: number | null;
  targetText: string | null;
  meetsTarget: boolean | null;
  /** Petrel's figure in each repetition, in order: how noisy the median is. */
  runs: number[];
  /** A caveat, or why the baseline could not run. */
  note?: string;
  /** A few words for the result column (e.g. memory growth). */
  detail?: string;
}

export function formatValue(value: number, unit: string): string {
  if (unit === 'ms') return `${value.toFixed(value < 1 ? 3 : value < 100 ? 2 : 0)} ms`;
  if (unit === 'MB') return `${value.toFixed(1)} MB`;
  if (unit === '%') return `${Math.round(value)}%`;
  return `${Math.round(value).toLocaleString('en')} ${unit}`;
}

function ratioText(ratio: number): string {
  return ratio >= 1 ? `${ratio.toFixed(2)}x better` : `${(1 / ratio).toFixed(2)}x worse`;
}

/** What petrel's figure would have to be to meet the target, and how far off it is (a fraction). */
function shortfall(row: ResultRow): { needed: number; off: number } | undefined {
  if (row.baseline === null || row.target === null || row.meetsTarget !== false) return undefined;
  const needed = row.higherIsBetter ? row.baseline * row.target : row.baseline / row.target;
  return { needed, off: Math.abs(row.petrel - needed) / needed };
}

/** The result column: against the target when there is one, else how petrel compares. */
export function verdict(row: ResultRow): string {
  const detail = row.detail ? `${row.detail}; ` : '';
  if (row.baseline === null || row.ratio === null) return row.note ? `(${row.note})` : '';
  if (row.target === null) return `${detail}${ratioText(row.ratio)}`;
  const short = shortfall(row);
  if (!short) return `${detail}meets (${row.targetText})`;
  return `${detail}SHORT: ${row.higherIsBetter ? 'needs' : 'must be <='} ${formatValue(short.needed, row.unit)} (${row.targetText}), ${(short.off * 100).toFixed(0)}% ${row.higherIsBetter ? 'below' : 'over'}`;
}

/** The chart's two lines beside a bar: the ratio against the target, then the figures. */
function barText(row: ResultRow): [string, string] {
  const ratio = row.ratio!;
  const first = row.target === null ? ratioText(ratio) : `${ratio.toFixed(2)}x: ${row.meetsTarget ? 'meets' : 'SHORT of'} ${row.targetText}`;
  const short = shortfall(row);
  const figures = `petrel ${formatValue(row.petrel, row.unit)} vs ${formatValue(row.baseline!, row.unit)}`;
  const extra = short ? `; needs ${formatValue(short.needed, row.unit)}` : row.detail ? `; ${row.detail}` : '';
  return [first, figures + extra];
}

function baselineText(row: ResultRow): string {
  if (row.baselineName === null) return '';
  return row.baseline === null ? row.baselineName : `${formatValue(row.baseline, row.unit)} (${row.baselineName})`;
}

function cells(row: ResultRow): string[] {
  return [row.scenario, row.metric, formatValue(row.petrel, row.unit), baselineText(row), row.ratio === null ? '' : row.ratio.toFixed(2), verdict(row)];
}

const HEADER = ['scenario', 'metric', 'petrel', 'baseline', 'ratio', 'result'];

export function textTable(rows: ResultRow[]): string {
  const lines = rows.map(cells);
  const widths = HEADER.map((h, c) => Math.max(h.length, ...lines.map((l) => l[c].length)));
  const line = (row: string[]) => `${row.map((cell, c) => (c === 2 || c === 4 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd()}\n`;
  let out = line(HEADER) + line(widths.map((w) => '-'.repeat(w)));
  let previous = '';
  for (const l of lines) {
    out += line([l[0] === previous ? '' : l[0], ...l.slice(1)]);
    previous = l[0];
  }
  return out;
}

export function markdownTable(rows: ResultRow[]): string {
  const escape = (s: string) => s.replace(/\|/g, '\\|');
  let out = `| ${HEADER.join(' | ')} |\n|${HEADER.map((_, c) => (c === 2 || c === 4 ? ' ---: ' : ' --- ')).join('|')}|\n`;
  let previous = '';
  for (const row of rows) {
    const c = cells(row).map(escape);
    if (c[0] === previous) c[0] = '';
    else previous = c[0];
    out += `| ${c.join(' | ')} |\n`;
  }
  return out;
}

// ---- SVG ------------------------------------------------------------------------------------------------

const WIDTH = 1600;
const LABEL_X = 20;
const CHART_LEFT = 540;
const CHART_RIGHT = 1110;
const TEXT_X = 1130;
const ROW_HEIGHT = 44;
const HEADING_HEIGHT = 30;
const COLORS = { meets: '#2e7d32', short: '#c62828', better: '#1565c0', worse: '#8e7cc3' };
const FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * One bar group per figure that has a baseline: the bar runs from the baseline (1x) to petrel's
 * ratio on a log scale, right when petrel is better, left when worse; a dashed tick marks the
 * target. Green: meets its target; red: short of it; blue / violet: no target, better / worse.
 */
export function svgChart(rows: ResultRow[], subtitle: string): string {
  const charted = rows.filter((r) => r.ratio !== null && Number.isFinite(r.ratio) && r.ratio > 0);
  const ratios = charted.flatMap((r) => [r.ratio!, r.target ?? 1]);
  const span = Math.max(2, ...ratios.map((r) => Math.abs(Math.log10(r)))) * 1.1;
  const x = (ratio: number) => CHART_LEFT + ((Math.log10(ratio) + span) / (2 * span)) * (CHART_RIGHT - CHART_LEFT);
  const scenarios = [...new Set(charted.map((r) => r.scenario))];
  const top = 110;
  const height = top + scenarios.length * HEADING_HEIGHT + charted.length * ROW_HEIGHT + 60;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="${FONT}">`);
  parts.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  parts.push(`<text x="${LABEL_X}" y="34" font-size="22" font-weight="bold" fill="#222">petrel against its baselines</text>`);
  parts.push(`<text x="${LABEL_X}" y="58" font-size="13" fill="#555">${xml(subtitle)}</text>`);
  parts.push(`<text x="${LABEL_X}" y="78" font-size="13" fill="#555">Bars: petrel's figure as a ratio to the baseline (log scale); right of 1x is petrel better. Green meets its target (dashed tick), red falls short; blue / violet: no target.</text>`);

  // Grid: the baseline line at 1x, ticks at 2x, 5x and powers of ten, both ways.
  const ticks = [1, 2, 5, 10, 100, 1000].flatMap((t) => (t === 1 ? [1] : [t, 1 / t])).filter((t) => Math.abs(Math.log10(t)) <= span);
  const bottom = height - 50;
  for (const t of ticks) {
    const label = t >= 1 ? `${t}x` : `1/${Math.round(1 / t)}`;
    parts.push(`<line x1="${x(t)}" y1="${top - 8}" x2="${x(t)}" y2="${bottom}" stroke="${t === 1 ? '#333' : '#e3e3e3'}" stroke-width="${t === 1 ? 1.5 : 1}"/>`);
    parts.push(`<text x="${x(t)}" y="${top - 14}" font-size="11" fill="#666" text-anchor="middle">${label}</text>`);
    parts.push(`<text x="${x(t)}" y="${bottom + 16}" font-size="11" fill="#666" text-anchor="middle">${label}</text>`);
  }
  parts.push(`<text x="${x(1)}" y="${bottom + 34}" font-size="12" fill="#333" text-anchor="middle">baseline (1x)</text>`);
  parts.push(`<text x="${CHART_LEFT}" y="${bottom + 34}" font-size="12" fill="#666">&#8592; petrel worse</text>`);
  parts.push(`<text x="${CHART_RIGHT}" y="${bottom + 34}" font-size="12" fill="#666" text-anchor="end">petrel better &#8594;</text>`);

  let y = top;
  for (const scenario of scenarios) {
    parts.push(`<text x="${LABEL_X}" y="${y + 20}" font-size="15" font-weight="bold" fill="#222">${xml(scenario)}</text>`);
    parts.push(`<line x1="${LABEL_X}" y1="${y + 26}" x2="${WIDTH - 20}" y2="${y + 26}" stroke="#bbb"/>`);
    y += HEADING_HEIGHT;
    for (const row of charted.filter((r) => r.scenario === scenario)) {
      const ratio = row.ratio!;
      const color = row.target === null ? (ratio >= 1 ? COLORS.better : COLORS.worse) : row.meetsTarget ? COLORS.meets : COLORS.short;
      const [from, to] = [x(Math.min(1, ratio)), x(Math.max(1, ratio))];
      parts.push(`<text x="${LABEL_X}" y="${y + 17}" font-size="12.5" fill="#222">${xml(clip(row.metric, 78))}</text>`);
      parts.push(`<text x="${LABEL_X}" y="${y + 33}" font-size="11" fill="#666">${xml(clip(`vs ${row.baselineName}`, 88))}</text>`);
      parts.push(`<rect x="${from}" y="${y + 9}" width="${Math.max(2, to - from)}" height="22" fill="${color}" rx="2"/>`);
      if (row.target !== null) {
        parts.push(`<line x1="${x(row.target)}" y1="${y + 4}" x2="${x(row.target)}" y2="${y + 36}" stroke="#000" stroke-width="2" stroke-dasharray="4,3"/>`);
      }
      const [first, second] = barText(row);
      parts.push(`<text x="${TEXT_X}" y="${y + 17}" font-size="12.5" fill="${color}" font-weight="bold">${xml(clip(first, 62))}</text>`);
      parts.push(`<text x="${TEXT_X}" y="${y + 33}" font-size="11" fill="#444">${xml(clip(second, 78))}</text>`);
      y += ROW_HEIGHT;
    }
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
