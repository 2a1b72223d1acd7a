/**
 * US EPA Air Quality Index (AQI).
 *
 * Source: EPA, "Technical Assistance Document for the Reporting of Daily Air
 * Quality – the Air Quality Index (AQI)", EPA-454/B-24-002, May 2024
 * (Table 6 "Breakpoints for the AQI"), which carries the PM2.5 breakpoints of
 * the 2024 PM NAAQS revision (89 FR 16202, effective 2024-05-06). Only PM2.5
 * changed in 2024; the other pollutants keep their 2018 (EPA-454/B-18-007)
 * bands, and the two old Hazardous rows (301-400, 401-500) are one 301-500 row.
 *
 * Method (TAD section IV): truncate the concentration to the table's
 * precision, find the band that contains it, interpolate linearly
 *   I = (Ihi - Ilo) / (BPhi - BPlo) * (C - BPlo) + Ilo
 * and round to the nearest integer.
 */

export type Pollutant = 'pm25' | 'pm10' | 'o3' | 'no2' | 'co';

/** Every pollutant, in the order used to break ties for the responsible pollutant. */
export const POLLUTANTS: readonly Pollutant[] = ['pm25', 'pm10', 'o3', 'no2', 'co'];

export type AqiCategoryName =
  | 'Good'
  | 'Moderate'
  | 'Unhealthy for Sensitive Groups'
  | 'Unhealthy'
  | 'Very Unhealthy'
  | 'Hazardous';

export type AqiLevel = 1 | 2 | 3 | 4 | 5 | 6;

export interface AqiCategory {
  readonly name: AqiCategoryName;
  readonly level: AqiLevel;
  /** EPA standard AQI color (TAD Table 2), as a hex RGB string. */
  readonly color: string;
}

/** Category level from which a reading raises an alert: Unhealthy for Sensitive Groups (AQI 101) and worse. */
export const ALERT_LEVEL: AqiLevel = 3;

/** Top of the index. Concentrations above the last breakpoint are "beyond the AQI". */
export const MAX_AQI = 500;

export interface SubIndexDetail {
  /** Sub-index, 0..500 (capped at 500 when beyondIndex). */
  readonly aqi: number;
  /** True when the concentration is above the top breakpoint (EPA: report as beyond the AQI). */
  readonly beyondIndex: boolean;
  /** The truncated concentration the lookup used. */
  readonly truncated: number;
}

export interface AqiResult {
  /** The overall AQI: the highest sub-index. */
  readonly aqi: number;
  /** The pollutant responsible for the overall AQI (EPA's "main pollutant"). */
  readonly pollutant: Pollutant;
  readonly category: AqiCategory;
  readonly subIndices: Partial<Record<Pollutant, number>>;
  /** True when the responsible pollutant is beyond the AQI (aqi is then the capped 500). */
  readonly beyondIndex: boolean;
}

// ---------------------------------------------------------------------------
// Breakpoint tables

/** [BPlo, BPhi, Ilo, Ihi] in the pollutant's reporting units. */
type Row = readonly [number, number, number, number];

interface Table {
  /** Decimal places the concentration is truncated to before lookup. */
  readonly decimals: number;
  readonly rows: readonly Row[];
}

const GOOD: readonly [number, number] = [0, 50];
const MODERATE: readonly [number, number] = [51, 100];
const USG: readonly [number, number] = [101, 150];
const UNHEALTHY: readonly [number, number] = [151, 200];
const VERY_UNHEALTHY: readonly [number, number] = [201, 300];
const HAZARDOUS: readonly [number, number] = [301, 500];

function row(lo: number, hi: number, band: readonly [number, number]): Row {
  return [lo, hi, band[0], band[1]];
}

// PM2.5, 24-hour, µg/m³, truncated to 0.1 (2024 revision).
const PM25: Table = {
  decimals: 1,
  rows: [
    row(0.0, 9.0, GOOD),
    row(9.1, 35.4, MODERATE),
    row(35.5, 55.4, USG),
    row(55.5, 125.4, UNHEALTHY),
    row(125.5, 225.4, VERY_UNHEALTHY),
    row(225.5, 325.4, HAZARDOUS),
  ],
};

// PM10, 24-hour, µg/m³, truncated to an integer.
const PM10: Table = {
  decimals: 0,
  rows: [
    row(0, 54, GOOD),
    row(55, 154, MODERATE),
    row(155, 254, USG),
    row(255, 354, UNHEALTHY),
    row(355, 424, VERY_UNHEALTHY),
    row(425, 604, HAZARDOUS),
  ],
};

// O3, 8-hour, ppm, truncated to 0.001. EPA defines no 8-hour value above AQI 300.
const O3_8H: Table = {
  decimals: 3,
  rows: [
    row(0.0, 0.054, GOOD),
    row(0.055, 0.07, MODERATE),
    row(0.071, 0.085, USG),
    row(0.086, 0.105, UNHEALTHY),
    row(0.106, 0.2, VERY_UNHEALTHY),
  ],
};

// O3, 1-hour, ppm, truncated to 0.001. EPA defines no 1-hour value below AQI 101.
const O3_1H: Table = {
  decimals: 3,
  rows: [
    row(0.125, 0.164, USG),
    row(0.165, 0.204, UNHEALTHY),
    row(0.205, 0.404, VERY_UNHEALTHY),
    row(0.405, 0.604, HAZARDOUS),
  ],
};

// NO2, 1-hour, ppb, truncated to an integer.
const NO2: Table = {
  decimals: 0,
  rows: [
    row(0, 53, GOOD),
    row(54, 100, MODERATE),
    row(101, 360, USG),
    row(361, 649, UNHEALTHY),
    row(650, 1249, VERY_UNHEALTHY),
    row(1250, 2049, HAZARDOUS),
  ],
};

// CO, 8-hour, ppm, truncated to 0.1.
const CO: Table = {
  decimals: 1,
  rows: [
    row(0.0, 4.4, GOOD),
    row(4.5, 9.4, MODERATE),
    row(9.5, 12.4, USG),
    row(12.5, 15.4, UNHEALTHY),
    row(15.5, 30.4, VERY_UNHEALTHY),
    row(30.5, 50.4, HAZARDOUS),
  ],
};

const TABLES: Readonly<Record<Pollutant, Table>> = {
  pm25: PM25,
  pm10: PM10,
  o3: O3_8H,
  no2: NO2,
  co: CO,
};

// ---------------------------------------------------------------------------
// Arithmetic

/**
 * Concentration in whole units of the table's last decimal ("ticks"), truncated.
 * Working in integers keeps band edges exact (0.1 and 0.07 are not exact in
 * binary floating point). The tolerance keeps e.g. 0.29 * 1000 = 289.99999999999994
 * from truncating to 289.
 */
function toTicks(value: number, decimals: number): number {
  const scaled = value * 10 ** decimals;
  const nearest = Math.round(scaled);
  if (Math.abs(scaled - nearest) <= 1e-9 * Math.max(1, Math.abs(scaled))) return nearest;
  return Math.floor(scaled);
}

function fromTicks(ticks: number, decimals: number): number {
  return ticks / 10 ** decimals;
}

interface Lookup {
  readonly aqi: number;
  readonly beyondIndex: boolean;
}

/** Band lookup and interpolation on an already-truncated concentration; undefined when below the table. */
function lookup(table: Table, ticks: number): Lookup | undefined {
  const { decimals, rows } = table;
  for (const [lo, hi, iLo, iHi] of rows) {
    const loT = toTicks(lo, decimals);
    const hiT = toTicks(hi, decimals);
    if (ticks >= loT && ticks <= hiT) {
      // Same equation as the TAD, in ticks: the ratio is unchanged by the scaling.
      const index = ((iHi - iLo) * (ticks - loT)) / (hiT - loT) + iLo;
      return { aqi: Math.round(index), beyondIndex: false };
    }
  }
  const last = rows[rows.length - 1];
  if (last !== undefined && ticks > toTicks(last[1], decimals)) {
    return { aqi: last[3], beyondIndex: true };
  }
  return undefined;
}

/**
 * O3 uses the 8-hour table up to 0.200 ppm. EPA's 8-hour table has no values
 * above that (AQI 301+ "are calculated with 1-hour O3 concentrations", TAD
 * Table 6 note), so above 0.200 ppm the same reading is looked up in the
 * 1-hour table. The 1-hour maximum is never below the 8-hour mean, so this is
 * a lower bound of the 1-hour index. Between 0.201 and 0.404 ppm the 1-hour
 * table gives 300 or less, which would make the index fall as ozone rises past
 * the top of the 8-hour table; we hold it at 300 (top of Very Unhealthy) there
 * instead, so the index never decreases with concentration.
 */
function ozone(ticks: number): Lookup {
  if (ticks <= toTicks(0.2, O3_8H.decimals)) {
    const eightHour = lookup(O3_8H, ticks);
    if (eightHour !== undefined) return eightHour;
  }
  const oneHour = lookup(O3_1H, ticks);
  const floor = VERY_UNHEALTHY[1];
  if (oneHour === undefined || oneHour.aqi < floor) return { aqi: floor, beyondIndex: false };
  return oneHour;
}

function assertConcentration(pollutant: Pollutant, concentration: number): void {
  if (!Object.prototype.hasOwnProperty.call(TABLES, pollutant)) {
    throw new RangeError(`unknown pollutant: ${String(pollutant)}`);
  }
  if (typeof concentration !== 'number' || !Number.isFinite(concentration)) {
    throw new RangeError(`${pollutant} concentration must be a finite number, got ${String(concentration)}`);
  }
  if (concentration < 0) {
    throw new RangeError(`${pollutant} concentration must not be negative, got ${concentration}`);
  }
}

// ---------------------------------------------------------------------------
// Public API

/** Sub-index with the beyond-the-AQI flag and the truncated concentration used. */
export function subIndexDetail(pollutant: Pollutant, concentration: number): SubIndexDetail {
  assertConcentration(pollutant, concentration);
  const table = TABLES[pollutant];
  const ticks = toTicks(concentration, table.decimals);
  const result = pollutant === 'o3' ? ozone(ticks) : lookup(table, ticks);
  // Every table except 1-hour O3 starts at 0, so a non-negative input always lands.
  if (result === undefined) throw new RangeError(`no ${pollutant} breakpoint for ${concentration}`);
  return { aqi: result.aqi, beyondIndex: result.beyondIndex, truncated: fromTicks(ticks, table.decimals) };
}

/**
 * AQI sub-index for one pollutant. Concentrations above the top breakpoint
 * return 500 (use subIndexDetail or computeAqi to see the beyond-the-AQI flag).
 * Throws RangeError for negative or non-finite concentrations.
 */
export function subIndex(pollutant: Pollutant, concentration: number): number {
  return subIndexDetail(pollutant, concentration).aqi;
}

const CATEGORIES: readonly (AqiCategory & { readonly upTo: number })[] = [
  { name: 'Good', level: 1, color: '#00E400', upTo: 50 },
  { name: 'Moderate', level: 2, color: '#FFFF00', upTo: 100 },
  { name: 'Unhealthy for Sensitive Groups', level: 3, color: '#FF7E00', upTo: 150 },
  { name: 'Unhealthy', level: 4, color: '#FF0000', upTo: 200 },
  { name: 'Very Unhealthy', level: 5, color: '#8F3F97', upTo: 300 },
  { name: 'Hazardous', level: 6, color: '#7E0023', upTo: Number.POSITIVE_INFINITY },
];

/** EPA category for an AQI value. Values above 500 are still Hazardous. */
export function category(aqi: number): AqiCategory {
  if (typeof aqi !== 'number' || !Number.isFinite(aqi) || aqi < 0) {
    throw new RangeError(`AQI must be a finite non-negative number, got ${String(aqi)}`);
  }
  // Compare against upper bounds so a non-integer like 50.4 lands in the next band, not in a gap.
  const found = CATEGORIES.find((c) => aqi <= c.upTo) ?? CATEGORIES[CATEGORIES.length - 1];
  return { name: found.name, level: found.level, color: found.color };
}

/** True when the AQI is at or above ALERT_LEVEL (Unhealthy for Sensitive Groups, AQI 101+). */
export function raisesAlert(aqi: number): boolean {
  return category(aqi).level >= ALERT_LEVEL;
}

/**
 * Overall AQI: the highest sub-index among the given pollutants (TAD, "How to
 * handle values from multiple pollutants"). Undefined keys are ignored;
 * returns undefined when no pollutant is given. Ties go to the pollutant that
 * comes first in POLLUTANTS, except that a beyond-the-AQI pollutant wins a tie at 500.
 */
export function computeAqi(concentrations: Partial<Record<Pollutant, number>>): AqiResult | undefined {
  const subIndices: Partial<Record<Pollutant, number>> = {};
  let best: { pollutant: Pollutant; detail: SubIndexDetail } | undefined;
  for (const pollutant of POLLUTANTS) {
    const concentration = concentrations[pollutant];
    if (concentration === undefined) continue;
    const detail = subIndexDetail(pollutant, concentration);
    subIndices[pollutant] = detail.aqi;
    // At a capped 500, the pollutant that is really beyond the index outranks one sitting exactly on 500.
    const outranks =
      best === undefined ||
      detail.aqi > best.detail.aqi ||
      (detail.aqi === best.detail.aqi && detail.beyondIndex && !best.detail.beyondIndex);
    if (outranks) best = { pollutant, detail };
  }
  if (best === undefined) return undefined;
  const { aqi, beyondIndex } = best.detail;
  return { aqi, pollutant: best.pollutant, category: category(aqi), subIndices, beyondIndex };
}
