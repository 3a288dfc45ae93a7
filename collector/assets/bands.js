// ASHRAE inlet temperature bands and the colour class of a temperature against them.
//
// The zone report may carry its own bands (class from the collector's config) as
// `ashrae` or `bands`: {class, recommended: [min, max] or {min, max}, allowable: ...}.
// When it does not, class A1 is assumed (recommended 18–27 °C, allowable 15–32 °C).

export const A1 = { name: "A1", recommended: [18, 27], allowable: [15, 32] };

// Band names, coldest first, with the words the legend shows.
export const BANDS = [
  ["none", "no reading"],
  ["cold", "below allowable"],
  ["cool", "allowable, below recommended"],
  ["ok", "recommended"],
  ["warm", "allowable, above recommended"],
  ["hot", "above allowable"],
];

function range(value) {
  if (Array.isArray(value) && value.length === 2 && value.every(Number.isFinite)) return value;
  if (value && Number.isFinite(value.min) && Number.isFinite(value.max)) return [value.min, value.max];
  return null;
}

// The bands a report states, or A1.
export function bandsOf(report) {
  const given = report && (report.ashrae || report.bands);
  const recommended = range(given && given.recommended);
  const allowable = range(given && given.allowable);
  if (!recommended || !allowable) return A1;
  return { name: String(given.class || given.name || "?"), recommended, allowable };
}

// The inlet bands of a facility report's `envelope` ({class, temperature: {recommended:
// {low, high}, allowable: {low, high}}, ...}), or A1 when it has none.
export function envelopeBands(envelope) {
  const t = envelope && envelope.temperature;
  const pair = (band) => band && Number.isFinite(band.low) && Number.isFinite(band.high) ? [band.low, band.high] : null;
  const recommended = pair(t && t.recommended);
  const allowable = pair(t && t.allowable);
  if (!recommended || !allowable) return A1;
  return { name: String(envelope.class || "?"), recommended, allowable };
}

// The band of `celsius` (null or not a number: "none").
export function classify(celsius, bands = A1) {
  if (typeof celsius !== "number" || !Number.isFinite(celsius)) return "none";
  const [allowLow, allowHigh] = bands.allowable;
  const [recLow, recHigh] = bands.recommended;
  if (celsius < allowLow) return "cold";
  if (celsius < recLow) return "cool";
  if (celsius <= recHigh) return "ok";
  if (celsius <= allowHigh) return "warm";
  return "hot";
}

// The legend's words for a band name.
export function describe(band) {
  const found = BANDS.find(([name]) => name === band);
  return found ? found[1] : band;
}
