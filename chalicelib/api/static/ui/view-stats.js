// #/stats: the scheduler's counters and a chart of the last 24 hours' runs by outcome
// (hand-drawn SVG), updated live from `stats.changed` events.

import { detailLines, get } from "./api.js";
import { h, notice, pageHeading, replace, s, spinner } from "./dom.js";
import { VIEWER_ZONE, formatDuration, formatHour, timeElement } from "./format.js";

const REFRESH_MS = 60_000; // the hours move on even when nothing happens

function niceStep(max, steps) {
  const raw = Math.max(1, max) / steps;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) {
    if (m * power >= raw) return Math.max(1, m * power);
  }
  return 10 * power;
}

function metric(label, value, sub, cls) {
  return h(
    "div",
    { class: ["metric", cls] },
    h("dt", { class: "metric__label" }, label),
    h("dd", { class: "metric__value" }, value),
    sub ? h("dd", { class: "metric__sub" }, sub) : null,
  );
}

function percent(part, whole) {
  if (!whole) return "—";
  const value = (100 * part) / whole;
  return `${value >= 99.95 || value < 0.05 ? value.toFixed(0) : value.toFixed(1)}%`;
}

const number = new Intl.NumberFormat("en");

/** The chart: one stacked bar an hour, succeeded below, failed (hatched) on top. */
export function chart(hours) {
  const W = 960;
  const H = 250;
  const left = 44;
  const right = 12;
  const top = 14;
  const bottom = 34;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const totals = hours.map((x) => (x.succeeded || 0) + (x.failed || 0));
  const step = niceStep(Math.max(...totals, 0), 4);
  const max = step * 4;
  const slot = plotW / hours.length;
  const barW = Math.max(2, slot * 0.68);
  const y = (v) => top + plotH - (v / max) * plotH;
  const succeeded = hours.reduce((a, x) => a + (x.succeeded || 0), 0);
  const failed = hours.reduce((a, x) => a + (x.failed || 0), 0);
  let busiest = null;
  hours.forEach((x, i) => {
    if (totals[i] > 0 && (busiest === null || totals[i] > totals[busiest])) busiest = i;
  });
  const summary = `In the last 24 hours: ${number.format(succeeded)} runs succeeded and ${number.format(failed)} failed.${
    busiest !== null ? ` The busiest hour began at ${formatHour(hours[busiest].hour)} with ${totals[busiest]} runs.` : ""
  } Hours in ${VIEWER_ZONE}.`;

  const grid = [];
  for (let i = 0; i <= 4; i += 1) {
    const v = step * i;
    grid.push(
      s("line", { class: "chart__grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }),
      s("text", { class: "chart__axis", x: left - 8, y: y(v) + 4, "text-anchor": "end" }, number.format(v)),
    );
  }
  const bars = hours.map((x, i) => {
    const cx = left + i * slot + (slot - barW) / 2;
    const ok = x.succeeded || 0;
    const bad = x.failed || 0;
    const label = `${formatHour(x.hour)}: ${ok} succeeded, ${bad} failed`;
    return s(
      "g",
      { class: "chart__bar" },
      s("title", null, label),
      // A hit area the whole height of the slot, so that the tooltip is easy to reach.
      s("rect", { class: "chart__hit", x: left + i * slot, y: top, width: slot, height: plotH }),
      ok ? s("rect", { class: "chart__ok", x: cx, y: y(ok), width: barW, height: y(0) - y(ok), rx: 2 }) : null,
      bad ? s("rect", { class: "chart__failed", x: cx, y: y(ok + bad), width: barW, height: y(ok) - y(ok + bad), rx: 2 }) : null,
      bad ? s("rect", { class: "chart__failed-hatch", x: cx, y: y(ok + bad), width: barW, height: y(ok) - y(ok + bad), fill: "url(#hatch)", rx: 2 }) : null,
    );
  });
  const labels = hours
    .map((x, i) =>
      i % 3 === 0 || i === hours.length - 1
        ? s("text", { class: "chart__axis", x: left + i * slot + slot / 2, y: H - bottom + 18, "text-anchor": "middle" }, formatHour(x.hour))
        : null,
    )
    .filter(Boolean);

  const svg = s(
    "svg",
    { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "chart-title chart-desc", preserveAspectRatio: "xMidYMid meet" },
    s("title", { id: "chart-title" }, "Runs per hour over the last 24 hours, by outcome"),
    s("desc", { id: "chart-desc" }, summary),
    s(
      "defs",
      null,
      s(
        "pattern",
        { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
        s("line", { class: "chart__hatch-line", x1: 0, y1: 0, x2: 0, y2: 6 }),
      ),
    ),
    grid,
    s("line", { class: "chart__baseline", x1: left, x2: W - right, y1: y(0), y2: y(0) }),
    bars,
    labels,
  );

  const table = h(
    "details",
    { class: "chart-data" },
    h("summary", null, "Show the numbers"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table table--compact" },
        h("caption", { class: "visually-hidden" }, "Runs per hour over the last 24 hours"),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, `Hour (${VIEWER_ZONE})`), h("th", { scope: "col" }, "Succeeded"), h("th", { scope: "col" }, "Failed"))),
        h(
          "tbody",
          null,
          hours.map((x) => h("tr", null, h("th", { scope: "row" }, formatHour(x.hour)), h("td", null, String(x.succeeded || 0)), h("td", null, String(x.failed || 0)))),
        ),
      ),
    ),
  );
  return { svg, table, summary };
}

export function render(ctx) {
  ctx.setTitle("Stats");
  const updated = h("p", { class: "page-sub", id: "stats-updated" });
  const body = h("div", { class: "stats" }, spinner("Loading the stats"));
  ctx.root.append(h("div", { class: "page-head" }, pageHeading("Stats")), updated, body);
  let timer = null;

  function show(stats) {
    const totalRuns = stats.total_executions || 0;
    const finished = (stats.successful_executions || 0) + (stats.failed_executions || 0);
    const hours = Array.isArray(stats.last_24h_by_hour) ? stats.last_24h_by_hour : null;
    let chartSection;
    if (hours && hours.length) {
      const drawn = chart(hours);
      chartSection = h(
        "section",
        { class: "card", "aria-labelledby": "chart-heading" },
        h("div", { class: "card__head" }, h("h2", { id: "chart-heading", class: "card__title" }, "Last 24 hours"),
          h(
            "ul",
            { class: "legend", "aria-label": "Legend" },
            h("li", null, h("span", { class: "legend__swatch legend__swatch--ok", "aria-hidden": "true" }), "Succeeded"),
            h("li", null, h("span", { class: "legend__swatch legend__swatch--failed", "aria-hidden": "true" }), "Failed (hatched)"),
          )),
        h("p", { class: "chart-summary" }, drawn.summary),
        h("div", { class: "chart-wrap" }, drawn.svg),
        drawn.table,
      );
    } else {
      chartSection = notice("info", "No hourly figures", "This server does not report the last 24 hours by hour (last_24h_by_hour).");
    }
    replace(
      body,
      h(
        "section",
        { "aria-label": "Totals" },
        h(
          "dl",
          { class: "metrics" },
          metric("Jobs", number.format(stats.total_jobs || 0), `${number.format(stats.active_jobs || 0)} active · ${number.format(stats.paused_jobs || 0)} paused · ${number.format(stats.overdue_jobs || 0)} overdue`),
          metric("Runs, all time", number.format(totalRuns), `${number.format(stats.last_24h_executions || 0)} in the last 24 hours`),
          metric("Succeeded", number.format(stats.successful_executions || 0), `${percent(stats.successful_executions || 0, finished)} of finished runs`, "metric--ok"),
          metric("Failed", number.format(stats.failed_executions || 0), `${percent(stats.failed_executions || 0, finished)} of finished runs`, "metric--failed"),
          metric("Running now", number.format(stats.running_executions || 0), null),
          metric("Average duration", formatDuration(stats.average_duration || 0), "of finished runs"),
        ),
      ),
      chartSection,
    );
    replace(updated, "Updated ", timeElement(new Date().toISOString()), ctx.live.connected ? " · updates live" : "");
  }

  async function load() {
    try {
      show(await get("/jobs/stats/overview", { signal: ctx.signal }));
    } catch (error) {
      if (error.name === "AbortError") return;
      replace(body, notice("error", "The stats could not be loaded", detailLines(error), {
        actions: h("button", { type: "button", class: "btn btn--secondary", onclick: () => load() }, "Try again"),
      }));
    }
  }

  const stop = ctx.live.on((event) => {
    if (event.type === "stats.changed" && event.data) show(event.data);
  });
  timer = window.setInterval(load, REFRESH_MS);
  load();
  return () => {
    stop();
    window.clearInterval(timer);
  };
}
