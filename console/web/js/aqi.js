/** US EPA AQI categories with their standard colours, and the text colour readable on each. */

export const CATEGORIES = [
  { level: 1, name: 'Good', short: 'Good', color: '#00E400', ink: '#0b2e0b', min: 0, max: 50 },
  { level: 2, name: 'Moderate', short: 'Moderate', color: '#FFFF00', ink: '#333300', min: 51, max: 100 },
  { level: 3, name: 'Unhealthy for Sensitive Groups', short: 'USG', color: '#FF7E00', ink: '#2e1600', min: 101, max: 150 },
  { level: 4, name: 'Unhealthy', short: 'Unhealthy', color: '#FF0000', ink: '#ffffff', min: 151, max: 200 },
  { level: 5, name: 'Very Unhealthy', short: 'Very Unhealthy', color: '#8F3F97', ink: '#ffffff', min: 201, max: 300 },
  { level: 6, name: 'Hazardous', short: 'Hazardous', color: '#7E0023', ink: '#ffffff', min: 301, max: 500 },
];

/** Shown for a location without readings yet. */
export const NO_DATA = { level: 0, name: 'No data', short: 'No data', color: '#cfd6de', ink: '#3b4652', min: 0, max: 0 };

export function categoryOf(aqi) {
  if (typeof aqi !== 'number' || Number.isNaN(aqi)) return NO_DATA;
  return CATEGORIES.find((c) => aqi <= c.max) ?? CATEGORIES[CATEGORIES.length - 1];
}

export function categoryNamed(name) {
  return CATEGORIES.find((c) => c.name === name) ?? NO_DATA;
}
