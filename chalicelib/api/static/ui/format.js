// Times, durations and schedules in words.

import { h } from "./dom.js";

export const VIEWER_ZONE = (() => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
})();

const formatters = new Map();

/** A zone the browser knows: the given one, else UTC (the API knows more aliases). */
export function knownZone(zone) {
  if (!zone) return "UTC";
  try {
    new Intl.DateTimeFormat("en-GB", { timeZone: zone });
    return zone;
  } catch {
    return "UTC";
  }
}

function formatter(zone, style) {
  const key = `${zone}|${style}`;
  if (!formatters.has(key)) {
    const options = {
      timeZone: knownZone(zone),
      year: "numeric",
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    };
    if (style === "weekday") options.weekday = "short";
    if (style === "zone") options.timeZoneName = "short";
    if (style === "time") {
      delete options.year;
      delete options.month;
      delete options.day;
    }
    if (style === "hour") {
      delete options.year;
      delete options.month;
      delete options.day;
      delete options.second;
    }
    formatters.set(key, new Intl.DateTimeFormat("en-GB", options));
  }
  return formatters.get(key);
}

export function parseTime(value) {
  if (!value) return null;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "Thu, 26 Nov 2026, 17:00:00" in `zone` (default: the viewer's). */
export function formatDateTime(value, zone = VIEWER_ZONE, style = "weekday") {
  const date = parseTime(value);
  return date ? formatter(zone, style).format(date) : "—";
}

export function formatHour(value, zone = VIEWER_ZONE) {
  const date = parseTime(value);
  return date ? formatter(zone, "hour").format(date) : "";
}

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

/** "in 5 s", "3 min ago", "yesterday". */
export function formatRelative(value, now = Date.now()) {
  const date = parseTime(value);
  if (!date) return "—";
  const seconds = Math.round((date.getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 1) return "now";
  if (abs < 60) return relative.format(seconds, "second");
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  if (abs < 86400 * 30) return relative.format(Math.round(seconds / 86400), "day");
  if (abs < 86400 * 365) return relative.format(Math.round(seconds / (86400 * 30)), "month");
  return relative.format(Math.round(seconds / (86400 * 365)), "year");
}

/**
 * A <time> showing a relative time ("in 5 s"), the full date in its title; app.js refreshes
 * every element with data-relative once a second or so.
 */
export function timeElement(value, { zone = VIEWER_ZONE, relativeText = true } = {}) {
  const date = parseTime(value);
  if (!date) return h("span", { class: "muted" }, "—");
  const full = formatDateTime(date, zone, "zone");
  return h(
    "time",
    { datetime: date.toISOString(), title: full, dataset: relativeText ? { relative: date.toISOString() } : {} },
    relativeText ? formatRelative(date) : formatDateTime(date, zone),
  );
}

/** Refresh the relative times below `root`. */
export function refreshRelativeTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll("time[data-relative]")) {
    const text = formatRelative(el.dataset.relative, now);
    if (el.textContent !== text) el.textContent = text;
  }
}

/** 0.0123 → "12 ms", 75 → "1 min 15 s". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "—";
  const s = Number(seconds);
  if (s < 1) return `${Math.max(0, Math.round(s * 1000))} ms`;
  if (s < 60) return `${s < 10 ? s.toFixed(2).replace(/\.?0+$/, "") : Math.round(s)} s`;
  return spanInWords(Math.round(s), { short: true });
}

const UNITS = [
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];
const SHORT = { day: "d", hour: "h", minute: "min", second: "s" };

/** 5400 → "1 hour 30 minutes" (short: "1 h 30 min"). */
export function spanInWords(totalSeconds, { short = false } = {}) {
  let rest = Math.round(Number(totalSeconds));
  if (!Number.isFinite(rest) || rest <= 0) return short ? "0 s" : "0 seconds";
  const parts = [];
  for (const [name, size] of UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      parts.push(short ? `${n} ${SHORT[name]}` : `${n} ${name}${n === 1 ? "" : "s"}`);
      rest -= n * size;
    }
  }
  return parts.join(" ");
}

export function describeInterval(seconds) {
  const n = Number(seconds);
  if (!Number.isFinite(n) || n < 1) return "";
  if (n === 1) return "Every second";
  const words = spanInWords(n);
  return words.startsWith("1 ") && !words.includes(" ", 2) ? `Every ${words.slice(2)}` : `Every ${words}`;
}

// -- calendar rules (RFC 5545) in words, for the common forms; else null ---------------------

const DAYS = { MO: "Monday", TU: "Tuesday", WE: "Wednesday", TH: "Thursday", FR: "Friday", SA: "Saturday", SU: "Sunday" };
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const FREQ = {
  YEARLY: ["year", "Every year"],
  MONTHLY: ["month", "Every month"],
  WEEKLY: ["week", "Every week"],
  DAILY: ["day", "Every day"],
  HOURLY: ["hour", "Every hour"],
  MINUTELY: ["minute", "Every minute"],
};

function ordinal(n) {
  const v = Math.abs(n);
  const suffix = v % 100 >= 11 && v % 100 <= 13 ? "th" : ["th", "st", "nd", "rd"][v % 10] || "th";
  if (n === -1) return "last";
  if (n < 0) return `${v}${suffix} to last`;
  return `${v}${suffix}`;
}

function listWords(items) {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

function dayWords(value) {
  return value.split(",").map((raw) => {
    const m = /^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$/i.exec(raw.trim());
    if (!m) throw new Error("unknown day");
    const name = DAYS[m[2].toUpperCase()];
    return m[1] ? `the ${ordinal(Number(m[1]))} ${name}` : name;
  });
}

/**
 * "Every week on Monday and Friday at 09:00" for a single bare rule; null for anything this
 * does not read with confidence (the rule text is shown anyway).
 */
export function describeCalendarRule(text) {
  if (!text) return null;
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  if (lines.length !== 1) return null;
  const rule = lines[0].replace(/^RRULE:/i, "");
  const parts = {};
  for (const piece of rule.split(";")) {
    const [name, value] = piece.split("=");
    if (!name || value === undefined) return null;
    parts[name.trim().toUpperCase()] = value.trim().toUpperCase();
  }
  const known = new Set(["FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYHOUR", "BYMINUTE", "BYSETPOS", "COUNT", "WKST"]);
  if (Object.keys(parts).some((k) => !known.has(k)) || !FREQ[parts.FREQ]) return null;
  try {
    const [unit, every] = FREQ[parts.FREQ];
    const interval = parts.INTERVAL ? Number(parts.INTERVAL) : 1;
    if (!Number.isInteger(interval) || interval < 1) return null;
    let words = interval === 1 ? every : `Every ${interval} ${unit}s`;
    if (parts.BYMONTH) {
      const months = parts.BYMONTH.split(",").map((m) => MONTHS[Number(m) - 1]);
      if (months.some((m) => !m)) return null;
      words += ` in ${listWords(months)}`;
    }
    const daySet = parts.BYDAY ? parts.BYDAY.split(",").map((d) => d.trim()).sort().join(",") : "";
    const group = { "FR,MO,TH,TU,WE": ["weekday", "weekdays"], "SA,SU": ["weekend day", "weekends"] }[daySet];
    if (parts.BYSETPOS && parts.BYDAY) {
      const pos = parts.BYSETPOS.split(",").map(Number);
      if (pos.length !== 1 || !Number.isInteger(pos[0])) return null;
      words += group
        ? ` on the ${ordinal(pos[0])} ${group[0]}`
        : `, on the ${ordinal(pos[0])} of ${listWords(dayWords(parts.BYDAY))}`;
    } else if (parts.BYSETPOS) {
      return null;
    } else if (parts.BYDAY) {
      words += ` on ${group ? group[1] : listWords(dayWords(parts.BYDAY))}`;
    }
    if (parts.BYMONTHDAY) {
      const days = parts.BYMONTHDAY.split(",").map(Number);
      if (days.some((d) => !Number.isInteger(d) || d === 0)) return null;
      words += `${parts.BYDAY ? " and" : ""} on the ${listWords(days.map(ordinal))}`;
    }
    const hours = parts.BYHOUR ? parts.BYHOUR.split(",").map(Number) : null;
    const minutes = parts.BYMINUTE ? parts.BYMINUTE.split(",").map(Number) : null;
    if ((hours && hours.some((x) => !Number.isInteger(x))) || (minutes && minutes.some((x) => !Number.isInteger(x)))) return null;
    if (hours || minutes) {
      const hs = hours || (["DAILY", "WEEKLY", "MONTHLY", "YEARLY"].includes(parts.FREQ) ? [0] : null);
      const ms = minutes || [0];
      if (hs) {
        const times = [];
        for (const hh of hs) for (const mm of ms) times.push(`${String(hh).padStart(2, "0")}:${String(mm).padStart(2, "0")}`);
        if (times.length > 6) return null;
        words += ` at ${listWords(times)}`;
      } else {
        words += ` at minute ${listWords(ms.map(String))}`;
      }
    }
    else if (["DAILY", "WEEKLY", "MONTHLY", "YEARLY"].includes(parts.FREQ)) {
      words += " at 00:00"; // without DTSTART, a rule starts at midnight (calendar_rule.py)
    }
    if (parts.COUNT) words += `, ${parts.COUNT} times in all`;
    return words;
  } catch {
    return null;
  }
}

/** The schedule in words when it can be said without the API (cron needs /cron/validate). */
export function describeScheduleLocally(job) {
  switch (job.job_type) {
    case "interval":
      return describeInterval(job.interval_seconds);
    case "date":
      return job.scheduled_time ? `Once, on ${formatDateTime(job.scheduled_time, job.timezone)}` : "Once";
    case "calendar":
      return describeCalendarRule(job.calendar_rule) || "Calendar rule (RFC 5545)";
    default:
      return null;
  }
}

/**
 * When the job runs next, as far as the page can tell. The API's `next_run_at` is the first
 * run not yet handed to the work queue: runs due within the coming minute are sent ahead, so
 * for a short interval it is up to a minute later than the real next run. An interval job's
 * next run is plain arithmetic, so it is worked out here; other types keep `next_run_at`.
 */
export function nextRunEstimate(job, now = Date.now()) {
  if (!job.is_active || !job.next_run_at) return null;
  const reported = parseTime(job.next_run_at);
  if (job.job_type !== "interval" || !job.interval_seconds) return reported;
  const every = job.interval_seconds * 1000;
  const anchor = parseTime(job.start_time) || parseTime(job.created_at);
  if (!anchor) return reported;
  const first = job.start_time ? anchor.getTime() : Math.floor(anchor.getTime() / 1000) * 1000 + every;
  const at = now <= first ? first : first + Math.ceil((now - first) / every) * every;
  return new Date(Math.min(at, reported.getTime()));
}

/** A short schedule for the jobs table: the expression itself, or the interval in words. */
export function scheduleSummary(job) {
  switch (job.job_type) {
    case "cron":
      return h("code", { class: "code-inline" }, job.cron_expression || "");
    case "interval":
      return describeInterval(job.interval_seconds);
    case "date":
      return `Once, ${formatDateTime(job.scheduled_time, job.timezone, "plain")}`;
    case "calendar":
      return describeCalendarRule(job.calendar_rule) || "Calendar rule";
    default:
      return job.job_type;
  }
}

export const JOB_TYPE_WORDS = { cron: "Cron", interval: "Interval", date: "One-off date", calendar: "Calendar" };

/** The IANA zones the browser knows, UTC first (for the time zone field's suggestions). */
export function zoneNames() {
  let names = [];
  try {
    names = Intl.supportedValuesOf("timeZone");
  } catch {
    names = [];
  }
  return ["UTC", ...names.filter((n) => n !== "UTC")];
}

/** An ISO instant as the value of an <input type="datetime-local"> in `zone`. */
export function toLocalInput(value, zone) {
  const date = parseTime(value);
  if (!date) return "";
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", {
      timeZone: knownZone(zone),
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    })
      .formatToParts(date)
      .map((p) => [p.type, p.value]),
  );
  const seconds = parts.second && parts.second !== "00" ? `:${parts.second}` : "";
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}${seconds}`;
}

/** An <input type="datetime-local"> value as the API reads it: wall-clock time, no offset. */
export function fromLocalInput(value) {
  if (!value) return null;
  return /T\d\d:\d\d$/.test(value) ? `${value}:00` : value;
}

// A job event carries the job as stored; a plain job's last run is not always written on it
// (the server reads it from the run's record), and the runs' own events may have shown a
// later one. The later last run is kept: what is shown only moves forward.
export function keepLastRun(known, job) {
  if (!known || !known.last_run_at || (job.last_run_at && job.last_run_at >= known.last_run_at)) return job;
  const status = !job.is_active ? job.status : job.running_count ? "running" : known.last_run_status || job.status;
  return { ...job, last_run_at: known.last_run_at, last_run_status: known.last_run_status, status };
}
