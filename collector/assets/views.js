// The dashboard's pages. Each view takes its route's parameters and resolves to a node;
// every figure comes from the JSON API. Zone figures come from the facility report
// (`/api/v1/report`: rows, racks, the ASHRAE envelope, humidity, cooling units, hot spots,
// forecasts, stale sensors); the rack chart from one `/api/v1/history/series` call.

import { get, rfc3339 } from "./api.js";
import { h, when, ago, celsius, firstNumber, table, link } from "./dom.js";
import { BANDS, envelopeBands, classify, describe } from "./bands.js";
import { temperatureChart } from "./chart.js";

const HOUR = 3600e3;

// The period the zone pages report on.
const PERIOD = "24h";

// The report's names for "no row" and "no rack" (collector/src/report/facility.rs).
const NO_ROW = "(no row)";
const NO_RACK = "(no rack)";

function badge(text, kind) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

// The facility report of `site` (every zone, or only `zone`) over the last PERIOD.
async function facility(site, zone) {
  const report = await get("report", { site, zone, since: PERIOD });
  return { report, bands: envelopeBands(report.envelope) };
}

// The racks of a zone section, each with its row; a "(no rack)" entry without inlet samples
// (cooling units and room sensors) is not a rack to colour.
function racksOf(section) {
  return (section.rows || []).flatMap((row) => (row.racks || []).map((rack) => ({ ...rack, row: row.row })))
    .filter((rack) => rack.rack !== NO_RACK || (rack.inlet && rack.inlet.samples > 0));
}

// "1 h 20 min" of a number of seconds.
function duration(secs) {
  if (!Number.isFinite(secs)) return "—";
  if (secs < 60) return `${secs} s`;
  const mins = Math.round(secs / 60);
  if (mins < 60) return `${mins} min`;
  const hours = Math.floor(mins / 60);
  return mins % 60 ? `${hours} h ${mins % 60} min` : `${hours} h`;
}

// Time spent outside a band ({at_least, at_most}, seconds): exact when both bounds agree,
// else the range the roll-ups allow.
function timeRange(range) {
  if (!range) return "—";
  if (range.at_least === range.at_most) return duration(range.at_least);
  return `${duration(range.at_least)} – ${duration(range.at_most)}`;
}

// A signed difference in °C ("+0.4 °C"), or a dash.
function delta(value) {
  if (!Number.isFinite(value)) return "—";
  return `${value > 0 ? "+" : value < 0 ? "−" : "±"}${Math.abs(value).toFixed(1)} °C`;
}

function percent(value) {
  return Number.isFinite(value) ? `${value.toFixed(1)} %` : "—";
}

const STANDING = { recommended: "recommended", allowable: "allowable", outside_allowable: "outside allowable" };

// The heat map of one zone section: one tile per rack, grouped by row, coloured by the rack's
// current inlet temperature against the report's envelope.
function heatMap(section, site, zone, bands) {
  const racks = racksOf(section);
  if (!racks.length) return h("p", { class: "muted" }, "No racks reported yet.");
  const rows = new Map();
  for (const rack of racks) {
    if (!rows.has(rack.row)) rows.set(rack.row, []);
    rows.get(rack.row).push(rack);
  }
  return h("div", { class: "heatmap", "data-zone": zone },
    [...rows].map(([row, list]) => h("div", { class: "heatrow" },
      row && row !== NO_ROW ? h("span", { class: "rowname" }, `Row ${row}`) : null,
      list.map((rack) => {
        const t = firstNumber(rack.inlet && rack.inlet.current);
        const band = classify(t, bands);
        const above = rack.inlet && rack.inlet.recommended ? rack.inlet.recommended.above : null;
        return h("a", {
          class: `rack band-${band}`, href: "#/" + ["rack", site, zone, rack.rack].map(encodeURIComponent).join("/"),
          "data-rack": rack.rack, "data-band": band, "data-inlet": t,
          title: `${rack.rack}: ${celsius(t)} (${describe(band)}); above recommended ${timeRange(above)} in ${PERIOD}`,
        }, h("span", { class: "rackname" }, rack.rack), h("span", { class: "temp" }, celsius(t)),
        rack.open_incidents ? h("span", { class: "alarm", title: "open incidents" }, `⚠ ${rack.open_incidents}`) : null);
      }))));
}

function legend(bands) {
  return h("div", { class: "legend" },
    h("span", { class: "muted" }, `ASHRAE ${bands.name}: recommended ${bands.recommended[0]}–${bands.recommended[1]} °C, ` +
      `allowable ${bands.allowable[0]}–${bands.allowable[1]} °C`),
    BANDS.map(([name, words]) => h("span", { class: "key" }, h("i", { class: `swatch band-${name}` }), words)));
}

// Where an incident or problem is: "site / zone" (full records carry a fingerprint; a zone
// report's summaries do not, their zone is the page's).
function where(x) {
  return x.fingerprint ? `${x.fingerprint.site} / ${x.fingerprint.zone}` : "this zone";
}

function category(x) {
  return (x.fingerprint && x.fingerprint.category) || x.category || "";
}

function incidentRows(list) {
  return list.map((i) => [
    link(i.id, "incident", i.id),
    where(i),
    category(i),
    badge(i.severity, i.severity),
    badge(i.status, i.status),
    when(i.opened_at),
    (i.active_sources || []).join(", ") || "—",
  ]);
}

function problemRows(list) {
  return list.map((p) => [
    link(p.id, "problem", p.id),
    where(p),
    category(p),
    badge(p.status, p.status),
    when(p.opened_at),
    p.reason || "",
  ]);
}

// Site overview: every zone with its mini heat map and counts, the agents, the totals. One
// facility report per site covers all of its zones.
export async function overview() {
  const [zones, stats, agents] = await Promise.all([get("zones"), get("stats"), get("agents")]);
  const sites = [...new Set(zones.map((z) => z.site))];
  const reports = new Map(await Promise.all(sites.map((site) =>
    facility(site).then((r) => [site, r]).catch(() => [site, null]))));
  const sectionOf = (z) => {
    const r = reports.get(z.site);
    const section = r && (r.report.zones || []).find((x) => x.zone === z.zone);
    return section ? [section, r.bands] : null;
  };
  const now = Date.now();
  const agentRows = Object.entries(agents).map(([id, a]) => [
    id, a.site || "", a.silent ? badge("silent", "critical") : badge("live", "resolved"),
    ago(firstNumber(a.last_activity, a.last_seen), now), String(a.records ?? "—"),
    String(a.dropped_by_agent ?? 0),
  ]);
  return h("section", {},
    h("h1", {}, "Site overview"),
    h("div", { class: "totals" },
      h("div", { class: "total", id: "total-incidents" }, h("b", {}, String(stats.open_incidents)), "open incidents"),
      h("div", { class: "total" }, h("b", {}, String(stats.open_problems)), "open problems"),
      h("div", { class: "total" }, h("b", {}, String(stats.agents)), "agents"),
      h("div", { class: "total" }, h("b", {}, stats.latest_event ? ago(stats.latest_event, now) : "—"), "latest event")),
    zones.length ? null : h("p", { class: "muted" }, "No zone has reported yet."),
    h("div", { class: "zones" }, zones.map((z) => {
      const found = sectionOf(z);
      return h("article", { class: "zone card" },
        h("h2", {}, link(`${z.site} / ${z.zone}`, "zone", z.site, z.zone)),
        h("p", { class: "muted" }, `${z.racks} racks · ${z.open_incidents} open incidents · ${z.open_problems} open problems`),
        found ? heatMap(found[0], z.site, z.zone, found[1]) : h("p", { class: "muted" }, "Report unavailable."));
    })),
    h("h2", {}, "Agents"),
    table(["agent", "site", "state", "last heard", "records", "dropped"], agentRows, "No agent has connected yet."));
}

// A table of measures against their envelope: humidity and dew point.
function envelopeRows(section, envelope) {
  const rows = [];
  for (const [name, key, unit] of [["humidity", "humidity", percent], ["dew point", "dew_point", celsius]]) {
    const f = section[key];
    if (!f) continue;
    const limits = envelope && envelope[key];
    const band = limits ? `${limits.recommended.low}–${limits.recommended.high} (allowable ${limits.allowable.low}–${limits.allowable.high})` : "—";
    rows.push(h("tr", { "data-measure": key },
      [name, unit(f.current), unit(f.avg), unit(f.min), unit(f.max), band,
        f.standing ? badge(STANDING[f.standing] || f.standing, f.standing) : "—",
        timeRange(f.recommended && f.recommended.above), timeRange(f.recommended && f.recommended.below)]
        .map((c) => h("td", {}, c))));
  }
  if (!rows.length) return h("p", { class: "muted" }, "No humidity or dew-point sensor in this zone.");
  return h("div", { class: "scroll" }, h("table", { id: "envelope" },
    h("thead", {}, h("tr", {}, ["measure", "now", "average", "min", "max", "recommended", "standing", "above", "below"]
      .map((t) => h("th", {}, t)))),
    h("tbody", {}, rows)));
}

function coolingUnits(units) {
  if (!units.length) return h("p", { class: "muted" }, "No cooling unit reports supply and return air here.");
  return h("div", { class: "scroll" }, h("table", { id: "cooling-units" },
    h("thead", {}, h("tr", {}, ["unit", "supply now", "supply avg", "return now", "return avg", "ΔT now", "ΔT avg"]
      .map((t) => h("th", {}, t)))),
    h("tbody", {}, units.map((u) => h("tr", { "data-unit": u.unit, "data-delta-t": u.delta_t_current },
      [u.unit, celsius(u.supply.current), celsius(u.supply.avg), celsius(u.return.current), celsius(u.return.avg),
        celsius(u.delta_t_current), celsius(u.delta_t_avg)].map((c) => h("td", {}, c)))))));
}

function hotSpots(spots, site, zone) {
  if (!spots.length) return h("p", { class: "muted" }, "No inlet above the recommended band.");
  return h("div", { class: "scroll" }, h("table", { id: "hot-spots" },
    h("thead", {}, h("tr", {}, ["#", "sensor", "rack", "now", "max", "p95 (≤)", "above recommended", "above allowable"]
      .map((t) => h("th", {}, t)))),
    h("tbody", {}, spots.map((x, n) => h("tr", { "data-rank": n + 1, "data-sensor": x.sensor },
      [String(n + 1), x.sensor, x.rack === NO_RACK ? x.rack : link(x.rack, "rack", site, zone, x.rack),
        celsius(x.current), celsius(x.max), celsius(x.p95), timeRange(x.above_recommended), timeRange(x.above_allowable)]
        .map((c) => h("td", {}, c)))))));
}

// The zone's open forecasts (issue 15): sensors whose trend reaches their limit within the
// horizon, soonest first, with the current value and the expected crossing time.
function trending(list, site, zone) {
  if (!list.length) return h("p", { class: "muted", id: "trending-none" }, "No sensor trending towards its limit.");
  return h("div", { class: "scroll" }, h("table", { id: "trending" },
    h("thead", {}, h("tr", {}, ["sensor", "rack", "now", "limit", "expected crossing", "forecast raised"]
      .map((t) => h("th", {}, t)))),
    h("tbody", {}, list.map((f) => h("tr", { "data-sensor": f.sensor },
      [f.sensor, f.rack ? link(f.rack, "rack", site, zone, f.rack) : "—", celsius(f.current), celsius(f.limit),
        when(f.expected_crossing), when(f.raised_at)]
        .map((c) => h("td", {}, c)))))));
}

// One zone, from the facility report over the last PERIOD: inlet figures, heat map, racks
// with time above the band, hot spots, sensors trending towards their limit, humidity and dew
// point, cooling units, stale and faulty sensors, open incidents and problems.
export async function zone(site, zoneName) {
  const { report, bands } = await facility(site, zoneName);
  const z = (report.zones || []).find((x) => x.zone === zoneName);
  if (!z) throw new Error(`the report has no zone ${zoneName}`);
  const inlet = z.inlet || {};
  const racks = racksOf(z);
  return h("section", {},
    h("p", { class: "crumbs" }, link("Site", ""), " › ", `${report.site} / ${z.zone}`),
    h("h1", {}, `Zone ${z.zone}`),
    h("p", { class: "muted", id: "period" }, `Last ${PERIOD}, ${when(report.from)} – ${when(report.to)}, from ${report.level} roll-ups`),
    h("div", { class: "totals" },
      h("div", { class: `total band-${classify(inlet.current, bands)}`, id: "zone-now" }, h("b", {}, celsius(inlet.current)), "hottest inlet now"),
      h("div", { class: "total" }, h("b", {}, celsius(inlet.avg)), `average (${delta(z.trend && z.trend.avg_delta)} vs previous)`),
      h("div", { class: "total" }, h("b", {}, celsius(inlet.p95)), "p95 (upper bound)"),
      h("div", { class: "total", id: "zone-above" }, h("b", {}, timeRange(inlet.recommended && inlet.recommended.above)), "above recommended")),
    h("h2", {}, "Heat map (inlet now)"),
    heatMap(z, report.site, z.zone, bands),
    legend(bands),
    h("h2", {}, `Racks (last ${PERIOD})`),
    table(["rack", "row", "sensors", "now", "average", "max", "p95 (≤)", "above recommended", "above allowable", "trend (avg)", "open incidents"],
      racks.map((r) => [
        link(r.rack, "rack", report.site, z.zone, r.rack), r.row === NO_ROW ? "—" : r.row, String(r.sensors ?? "—"),
        celsius(r.inlet.current), celsius(r.inlet.avg), celsius(r.inlet.max), celsius(r.inlet.p95),
        timeRange(r.inlet.recommended && r.inlet.recommended.above), timeRange(r.inlet.allowable && r.inlet.allowable.above),
        delta(r.trend && r.trend.avg_delta), String(r.open_incidents ?? 0),
      ])),
    h("h2", {}, "Hot spots"),
    hotSpots(z.hot_spots || [], report.site, z.zone),
    h("h2", {}, "Trending towards the limit"),
    trending(z.forecasts || [], report.site, z.zone),
    h("h2", {}, "Humidity and dew point"),
    envelopeRows(z, report.envelope),
    h("h2", {}, "Cooling units"),
    coolingUnits(z.cooling_units || []),
    h("h2", {}, "Stale and faulty sensors"),
    table(["sensor", "kind", "rack", "last seen", "last value"], (z.stale_sensors || []).map((x) => [
      x.sensor, x.kind, x.rack, when(x.last_at), String(x.last),
    ]), "No stale sensor."),
    table(["source", "kind", "detector", "incident", "since"], (z.faulty_sensors || []).map((x) => [
      x.name, x.source_kind, x.detector || "—", link(x.incident, "incident", x.incident), when(x.since),
    ]), "No faulty sensor."),
    h("h2", {}, "Open incidents"),
    table(["id", "zone", "category", "severity", "status", "opened", "sources"], incidentRows(z.open_incidents || []), "No open incident."),
    h("h2", {}, "Open problems"),
    table(["id", "zone", "category", "status", "opened", "reason"], problemRows(z.open_problems || []), "No open problem."));
}

// Hourly figures of one rack's inlet sensors over the last 24 hours, in one request: the
// series route answers one point per sensor and hour; the sensors are merged per hour here.
async function hourly(site, zoneName, rack, now) {
  const end = Math.floor(now / HOUR) * HOUR + HOUR;
  const from = end - 24 * HOUR;
  const answer = await get("history/series", {
    site, zone: zoneName, rack, kind: "inlet_temp", level: "hour", from: rfc3339(from), to: rfc3339(now),
  });
  const slots = new Map(Array.from({ length: 24 }, (_, i) => [from + i * HOUR, []]));
  for (const series of answer.series || []) {
    for (const p of series.points || []) if (p.count > 0 && slots.has(p.start)) slots.get(p.start).push(p);
  }
  const points = [...slots].map(([t, list]) => {
    if (!list.length) return { t, avg: null, min: null, max: null };
    const count = list.reduce((a, p) => a + p.count, 0);
    return {
      t,
      avg: list.reduce((a, p) => a + p.sum, 0) / count,
      min: Math.min(...list.map((p) => p.min)),
      max: Math.max(...list.map((p) => p.max)),
    };
  });
  return { points, from, to: end };
}

// One rack: its figures from the facility report and the 24-hour inlet chart.
export async function rack(site, zoneName, rackName) {
  const [{ report, bands }, series] = await Promise.all([
    facility(site, zoneName),
    hourly(site, zoneName, rackName, Date.now()),
  ]);
  const z = (report.zones || []).find((x) => x.zone === zoneName) || {};
  const row = racksOf(z).find((r) => r.rack === rackName) || { inlet: {} };
  const inlet = row.inlet || {};
  const t = firstNumber(inlet.current);
  const band = classify(t, bands);
  const withData = series.points.filter((p) => Number.isFinite(p.avg));
  return h("section", {},
    h("p", { class: "crumbs" }, link("Site", ""), " › ", link(`${site} / ${zoneName}`, "zone", site, zoneName), " › ", rackName),
    h("h1", {}, `Rack ${rackName}`),
    h("div", { class: "totals" },
      h("div", { class: `total band-${band}`, id: "rack-now", "data-band": band }, h("b", {}, celsius(t)), `now (${describe(band)})`),
      h("div", { class: "total" }, h("b", {}, celsius(inlet.avg)), `average (last ${PERIOD})`),
      h("div", { class: "total" }, h("b", {}, celsius(inlet.max)), `max (last ${PERIOD})`),
      h("div", { class: "total" }, h("b", {}, timeRange(inlet.recommended && inlet.recommended.above)), "above recommended")),
    h("h2", {}, "Inlet temperature, last 24 hours (hourly average, min–max shaded)"),
    h("div", { class: "chartbox", id: "rack-chart", "data-points": withData.length },
      temperatureChart(series.points, series.from, series.to, bands)),
    withData.length ? null : h("p", { class: "muted" }, "No roll-up for this rack in the last 24 hours."),
    legend(bands));
}

function chronicle(entries) {
  if (!entries || !entries.length) return h("p", { class: "muted" }, "Nothing recorded yet.");
  return h("ol", { class: "chronicle", id: "chronicle" }, entries.map((e) =>
    h("li", { "data-kind": e.kind },
      h("time", {}, when(e.at)), " ", badge(String(e.kind).replace("_", " "), e.kind), " ",
      h("span", { class: "who" }, e.who), " ", h("span", { class: "text" }, e.text))));
}

function cause(probable) {
  if (!probable) return null;
  return h("div", { class: "card cause" },
    h("h2", {}, "Probable cause"),
    h("p", {}, probable.summary || String(probable.kind || "")),
    probable.evidence && probable.evidence.length ? h("ul", {}, probable.evidence.map((e) => h("li", {}, e))) : null);
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// Every incident, open ones first, newest first.
export async function incidents() {
  const list = await get("incidents");
  list.sort((a, b) => (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1) || b.opened_at - a.opened_at);
  const open = list.filter((i) => i.status === "open");
  const node = table(["id", "zone", "category", "severity", "status", "opened", "sources"], incidentRows(list), "No incident.");
  if (node.tagName === "DIV") node.querySelector("table").id = "incident-list";
  return h("section", {}, h("h1", {}, "Incidents"),
    h("p", { class: "muted" }, `${open.length} open, ${list.length - open.length} resolved`), node);
}

// One incident: facts, chronicle (events, state changes, actions, pages) and raw timeline.
export async function incident(id) {
  const i = await get(`incidents/${encodeURIComponent(id)}`);
  return h("section", {},
    h("p", { class: "crumbs" }, link("Incidents", "incidents"), " › ", i.id),
    h("h1", {}, `Incident ${i.id}`),
    facts([
      ["zone", link(`${i.fingerprint.site} / ${i.fingerprint.zone}`, "zone", i.fingerprint.site, i.fingerprint.zone)],
      ["category", i.fingerprint.category], ["severity", badge(i.severity, i.severity)],
      ["status", badge(i.status, i.status)], ["opened", when(i.opened_at)],
      ["resolved", i.resolved_at ? when(i.resolved_at) : null],
      ["active sources", (i.active_sources || []).join(", ")],
      ["problem", i.problem ? link(i.problem, "problem", i.problem) : null],
      ["acknowledged", i.acknowledged ? `${i.acknowledged.actor || ""} ${when(i.acknowledged.at)}` : null],
      ["workaround", i.workaround],
    ]),
    cause(i.probable_cause),
    h("h2", {}, "Chronicle"), chronicle(i.chronicle),
    h("h2", {}, "Timeline (events)"),
    table(["time", "agent", "state", "severity", "what"], (i.timeline || []).map((e) =>
      [when(e.ts), e.agent, e.state, e.severity, e.text])));
}

// Every problem.
export async function problems() {
  const list = await get("problems");
  const node = table(["id", "zone", "category", "status", "opened", "reason"], problemRows(list), "No problem.");
  if (node.tagName === "DIV") node.querySelector("table").id = "problem-list";
  return h("section", {}, h("h1", {}, "Problems"), node);
}

// One problem: facts, probable cause, chronicle and its incidents.
export async function problem(id) {
  const p = await get(`problems/${encodeURIComponent(id)}`);
  return h("section", {},
    h("p", { class: "crumbs" }, link("Problems", "problems"), " › ", p.id),
    h("h1", {}, `Problem ${p.id}`),
    facts([
      ["zone", link(`${p.fingerprint.site} / ${p.fingerprint.zone}`, "zone", p.fingerprint.site, p.fingerprint.zone)],
      ["status", badge(p.status, p.status)], ["trigger", p.trigger], ["reason", p.reason],
      ["opened", when(p.opened_at)], ["resolved", p.resolved_at ? when(p.resolved_at) : null],
      ["reopened", p.reopened ? `${p.reopened} time(s)` : null],
      ["root cause", p.root_cause], ["workaround", p.workaround],
    ]),
    cause(p.probable_cause),
    h("h2", {}, "Chronicle"), chronicle(p.chronicle),
    h("h2", {}, "Incidents"),
    h("ul", {}, (p.incidents || []).map((i) => h("li", {}, link(i, "incident", i)))));
}

// Silences and maintenance windows (served with the operator API).
export async function silences() {
  const list = await get("silences", {}, null);
  if (list === null) {
    return h("section", {}, h("h1", {}, "Silences"),
      h("p", { class: "muted" }, "This collector serves no silences (its operator API is off)."));
  }
  const now = Date.now();
  return h("section", {}, h("h1", {}, "Silences"),
    table(["id", "site", "zone", "category", "from", "until", "state", "by", "comment"], list.map((x) => [
      String(x.id), x.site || "any", x.zone || "any", x.category || "any", when(x.starts_at), when(x.ends_at),
      x.starts_at > now ? badge("scheduled", "warning") : x.ends_at <= now ? badge("ended", "resolved") : badge("active", "open"),
      x.created_by || "", x.comment || "",
    ]), "No silence."));
}
