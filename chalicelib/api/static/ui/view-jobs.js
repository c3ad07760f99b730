// #/jobs: the jobs table, with filters, name search, cursor pages and live rows.

import { ApiError, detailLines, page } from "./api.js";
import { announce, badge, debounce, h, nextId, notice, pageHeading, replace } from "./dom.js";
import { JOB_TYPE_WORDS, keepLastRun, nextRunEstimate, scheduleSummary, timeElement } from "./format.js";

const PAGE_SIZES = [25, 50, 100];
// A name search reads pages of the list until a page of matches is found, at most this many
// (the API has no name filter): the status line says when more remain to be searched.
const SEARCH_BATCH = 200;
const SEARCH_MAX_REQUESTS = 10;

function filtersFrom(query) {
  const size = Number(query.get("size"));
  return {
    q: query.get("q") || "",
    active: ["true", "false"].includes(query.get("active")) ? query.get("active") : "",
    type: Object.hasOwn(JOB_TYPE_WORDS, query.get("type") || "") ? query.get("type") : "",
    tags: query.get("tags") || "",
    size: PAGE_SIZES.includes(size) ? size : PAGE_SIZES[0],
  };
}

function tagList(text) {
  return text.split(",").map((t) => t.trim()).filter(Boolean);
}

export function matches(job, filters) {
  if (filters.active && String(job.is_active) !== filters.active) return false;
  if (filters.type && job.job_type !== filters.type) return false;
  const wanted = tagList(filters.tags);
  if (wanted.length && !wanted.every((t) => (job.tags || []).includes(t))) return false;
  if (filters.q && !String(job.name).toLowerCase().includes(filters.q.toLowerCase())) return false;
  return true;
}

function tagChips(tags) {
  if (!tags || !tags.length) return h("span", { class: "muted" }, "—");
  return h("ul", { class: "tags", "aria-label": "Tags" }, tags.map((t) => h("li", { class: "tag" }, t)));
}

function row(job) {
  const cells = [
    [
      "Name",
      [
        h("a", { href: `#/jobs/${job.id}`, class: "table__primary-link" }, job.name),
        h("span", { class: "table__sub" }, `#${job.id} · ${job.task_name}`),
      ],
    ],
    ["Status", badge(job.status)],
    [
      "Schedule",
      [
        h("span", { class: "table__schedule" }, scheduleSummary(job)),
        h("span", { class: "table__sub" }, `${JOB_TYPE_WORDS[job.job_type] || job.job_type} · ${job.timezone}`),
      ],
    ],
    [
      "Next run",
      job.next_run_at
        ? timeElement(nextRunEstimate(job))
        : h("span", { class: "muted" }, job.is_active ? "None scheduled" : "Paused"),
    ],
    [
      "Last run",
      job.last_run_at
        ? h("span", { class: "stack-xs" }, job.last_run_status ? badge(job.last_run_status) : null, timeElement(job.last_run_at))
        : h("span", { class: "muted" }, "Never"),
    ],
    ["Tags", tagChips(job.tags)],
  ];
  return h(
    "tr",
    { dataset: { jobId: String(job.id) } },
    cells.map(([label, content], i) =>
      i === 0
        ? h("th", { scope: "row", dataset: { label } }, h("div", { class: "cell" }, content))
        : h("td", { dataset: { label } }, h("div", { class: "cell" }, content)),
    ),
  );
}

export function render(ctx) {
  ctx.setTitle("Jobs");
  const filters = filtersFrom(ctx.query);
  let cursors = [null]; // cursors[i]: where page i starts
  let pageIndex = 0;
  let nextCursor = null;
  let loadController = null; // set while a page loads
  const pending = []; // live events that came meanwhile
  const shown = new Map(); // job id → job

  // -- the filters -----------------------------------------------------------------------------
  const searchId = nextId("search");
  const search = h("input", { id: searchId, type: "search", class: "input", value: filters.q, placeholder: "Name contains…", autocomplete: "off" });
  const activeSelect = h(
    "select",
    { id: nextId("active"), class: "input" },
    h("option", { value: "" }, "Any"),
    h("option", { value: "true" }, "Active"),
    h("option", { value: "false" }, "Paused"),
  );
  activeSelect.value = filters.active;
  const typeSelect = h(
    "select",
    { id: nextId("type"), class: "input" },
    h("option", { value: "" }, "Any"),
    Object.entries(JOB_TYPE_WORDS).map(([value, word]) => h("option", { value }, word)),
  );
  typeSelect.value = filters.type;
  const tagsHelp = nextId("tags-help");
  const tagsInput = h("input", { id: nextId("tags"), class: "input", value: filters.tags, placeholder: "report, daily", autocomplete: "off", "aria-describedby": tagsHelp });
  const clearButton = h("button", { type: "button", class: "btn btn--ghost" }, "Clear filters");
  const field = (label, control, help) =>
    h("div", { class: "field field--inline" }, h("label", { for: control.id, class: "field__label" }, label), control, help || null);

  const filterForm = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter jobs" },
    field("Search by name", search),
    field("Status", activeSelect),
    field("Type", typeSelect),
    field("Tags", tagsInput, h("span", { id: tagsHelp, class: "visually-hidden" }, "Comma-separated; jobs with all of them")),
    h("div", { class: "filters__actions" }, clearButton),
  );
  filterForm.addEventListener("submit", (e) => {
    e.preventDefault();
    applyFilters();
  });

  // -- the table and its pages -----------------------------------------------------------------
  const statusLine = h("p", { class: "table-status", role: "status", "aria-live": "polite" });
  const errorBox = h("div");
  const tbody = h("tbody");
  const caption = h("caption", { class: "visually-hidden" }, "Jobs");
  const table = h(
    "table",
    { class: "table table--stack table--jobs", id: "jobs-table" },
    caption,
    h(
      "thead",
      null,
      h("tr", null, ["Name", "Status", "Schedule", "Next run", "Last run", "Tags"].map((t) => h("th", { scope: "col" }, t))),
    ),
    tbody,
  );
  const tableWrap = h("div", { class: "table-wrap" }, table);
  const empty = h("div", { class: "empty", hidden: true });
  const prev = h("button", { type: "button", class: "btn btn--secondary", disabled: true }, "← Previous");
  const next = h("button", { type: "button", class: "btn btn--secondary", disabled: true }, "Next →");
  const pageLabel = h("span", { class: "pager__label" });
  const sizeSelect = h("select", { id: nextId("size"), class: "input input--small" }, PAGE_SIZES.map((n) => h("option", { value: String(n) }, String(n))));
  sizeSelect.value = String(filters.size);
  const pager = h(
    "nav",
    { class: "pager", "aria-label": "Pages of jobs" },
    prev,
    pageLabel,
    next,
    h("span", { class: "pager__size" }, h("label", { for: sizeSelect.id }, "Per page"), sizeSelect),
  );

  ctx.root.append(
    h(
      "div",
      { class: "page-head" },
      pageHeading("Jobs"),
      h("a", { href: "#/new", class: "btn btn--primary" }, h("span", { "aria-hidden": "true" }, "+ "), "New job"),
    ),
    h("section", { class: "card card--flush", "aria-label": "Jobs" }, filterForm, errorBox, statusLine, tableWrap, empty, pager),
  );

  function describeFilters() {
    const parts = [];
    if (filters.q) parts.push(`name contains “${filters.q}”`);
    if (filters.active) parts.push(filters.active === "true" ? "active" : "paused");
    if (filters.type) parts.push(`type ${JOB_TYPE_WORDS[filters.type]}`);
    if (filters.tags) parts.push(`tags ${tagList(filters.tags).join(", ")}`);
    return parts.length ? ` (${parts.join("; ")})` : "";
  }

  function query(cursor, limit) {
    return {
      limit,
      cursor,
      is_active: filters.active,
      job_type: filters.type,
      tags: tagList(filters.tags).join(","),
    };
  }

  async function fetchPage(cursor, signal) {
    if (!filters.q) {
      const found = await page("/jobs", query(cursor, filters.size), { signal });
      return { items: found.items, next: found.next, scanned: null };
    }
    // A name search: read until a page of matches (or the end).
    const items = [];
    let at = cursor;
    let scanned = 0;
    for (let i = 0; i < SEARCH_MAX_REQUESTS; i += 1) {
      const found = await page("/jobs", query(at, SEARCH_BATCH), { signal });
      scanned += found.items.length;
      items.push(...found.items.filter((job) => matches(job, filters)));
      at = found.next;
      if (!at || items.length >= filters.size) break;
    }
    return { items, next: at, scanned };
  }

  async function load() {
    if (loadController) loadController.abort();
    loadController = new AbortController();
    const signal = loadController.signal;
    tableWrap.setAttribute("aria-busy", "true");
    statusLine.textContent = "Loading jobs…";
    replace(errorBox);
    prev.disabled = true;
    next.disabled = true;
    try {
      const result = await fetchPage(cursors[pageIndex], signal);
      nextCursor = result.next;
      shown.clear();
      replace(tbody, result.items.map((job) => {
        shown.set(job.id, job);
        return row(job);
      }));
      showCount(result.scanned);
    } catch (error) {
      if (error.name === "AbortError") return; // a newer load took over
      pending.length = 0;
      replace(tbody);
      shown.clear();
      nextCursor = null;
      replace(errorBox, notice("error", error instanceof ApiError ? `The jobs could not be loaded: ${error.title.toLowerCase()}` : "The jobs could not be loaded", detailLines(error), {
        actions: h("button", { type: "button", class: "btn btn--secondary", onclick: () => load() }, "Try again"),
      }));
      statusLine.textContent = "";
      table.hidden = true;
      empty.hidden = true;
    }
    loadController = null;
    tableWrap.removeAttribute("aria-busy");
    prev.disabled = pageIndex === 0;
    next.disabled = !nextCursor;
    pageLabel.textContent = `Page ${pageIndex + 1}`;
    for (const event of pending.splice(0)) handle(event);
  }

  function showCount(scanned) {
    const n = shown.size;
    caption.textContent = `Jobs${describeFilters()}, page ${pageIndex + 1}`;
    table.hidden = n === 0;
    empty.hidden = n !== 0;
    if (n === 0) {
      const filtered = filters.q || filters.active || filters.type || filters.tags;
      replace(
        empty,
        h("p", { class: "empty__title" }, filtered ? "No jobs match these filters." : "No jobs yet."),
        filtered
          ? h("button", { type: "button", class: "btn btn--secondary", onclick: clearFilters }, "Clear filters")
          : h("a", { href: "#/new", class: "btn btn--primary" }, "Create the first job"),
      );
    }
    let text = `${n} job${n === 1 ? "" : "s"} on this page${describeFilters()}.`;
    if (scanned !== null && scanned !== undefined && nextCursor) text += " More jobs remain to be searched: use Next.";
    statusLine.textContent = text;
  }

  function applyFilters() {
    const wanted = {
      q: search.value.trim(),
      active: activeSelect.value,
      type: typeSelect.value,
      tags: tagsInput.value.trim(),
      size: Number(sizeSelect.value),
    };
    if (Object.entries(wanted).every(([k, v]) => filters[k] === v)) return; // nothing changed
    Object.assign(filters, wanted);
    ctx.setQuery("/jobs", {
      q: filters.q,
      active: filters.active,
      type: filters.type,
      tags: filters.tags,
      size: filters.size === PAGE_SIZES[0] ? "" : filters.size,
    });
    cursors = [null];
    pageIndex = 0;
    load();
  }

  function clearFilters() {
    search.value = "";
    activeSelect.value = "";
    typeSelect.value = "";
    tagsInput.value = "";
    applyFilters();
    search.focus();
  }

  const typed = debounce(applyFilters, 350);
  for (const kind of ["input", "change", "search"]) {
    search.addEventListener(kind, typed);
    tagsInput.addEventListener(kind, typed);
  }
  activeSelect.addEventListener("change", applyFilters);
  typeSelect.addEventListener("change", applyFilters);
  sizeSelect.addEventListener("change", applyFilters);
  clearButton.addEventListener("click", clearFilters);
  prev.addEventListener("click", () => {
    if (pageIndex === 0) return;
    pageIndex -= 1;
    load();
  });
  next.addEventListener("click", () => {
    if (!nextCursor) return;
    cursors = cursors.slice(0, pageIndex + 1);
    cursors.push(nextCursor);
    pageIndex += 1;
    load();
  });

  // -- live rows -----------------------------------------------------------------------------
  function flash(el) {
    el.classList.remove("row--flash");
    void el.offsetWidth; // restart the animation
    el.classList.add("row--flash");
  }

  function withRun(known, event) {
    const run = event.data;
    if (event.type === "run.started") {
      return { ...known, status: known.is_active ? "running" : known.status };
    }
    const status = run.status === "completed" ? "completed" : "failed";
    const later = !known.last_run_at || run.started_at >= known.last_run_at;
    return later
      ? { ...known, status: known.is_active ? status : known.status, last_run_at: run.started_at || known.last_run_at, last_run_status: status }
      : known;
  }

  function upsert(job, { created = false } = {}) {
    const existing = tbody.querySelector(`tr[data-job-id="${job.id}"]`);
    if (!matches(job, filters)) {
      if (existing) {
        existing.remove();
        shown.delete(job.id);
        showCount(null);
      }
      return;
    }
    if (existing) {
      const focused = existing.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
      const fresh = row(job);
      existing.replaceWith(fresh);
      shown.set(job.id, job);
      if (focused) {
        const again = fresh.querySelector(`a[href="${focused}"]`);
        if (again) again.focus();
      }
      flash(fresh);
    } else if (created && pageIndex === 0) {
      const fresh = row(job);
      tbody.prepend(fresh);
      shown.set(job.id, job);
      flash(fresh);
      showCount(null);
    }
  }

  // Events that arrive while a page loads are applied once it has: the page may have been
  // read before them, and drawing it would otherwise drop what they changed.
  const stopListening = ctx.live.on((event) => {
    if (loadController) pending.push(event);
    else handle(event);
  });

  function handle(event) {
    const job = event.data;
    switch (event.type) {
      case "job.created":
        if (job) upsert(job, { created: true });
        if (job && !event.replay) announce(`Job “${job.name}” created.`);
        break;
      case "job.updated":
        if (job) upsert(keepLastRun(shown.get(job.id), job));
        break;
      case "job.paused":
      case "job.resumed":
        if (job) upsert(keepLastRun(shown.get(job.id), job));
        if (job && !event.replay && shown.has(job.id)) {
          announce(`Job “${job.name}” ${event.type === "job.paused" ? "paused" : "resumed"}.`);
        }
        break;
      case "run.started":
      case "run.succeeded":
      case "run.failed": {
        // What a run changes on its job (status, last run) comes in the run's own events.
        const known = shown.get(event.job_id);
        if (known && event.data) upsert(withRun(known, event));
        break;
      }
      case "job.deleted": {
        const existing = tbody.querySelector(`tr[data-job-id="${event.job_id}"]`);
        if (existing) {
          existing.remove();
          shown.delete(event.job_id);
          showCount(null);
          if (!event.replay) announce(`Job “${job ? job.name : event.job_id}” deleted.`);
        }
        break;
      }
      default:
        break;
    }
  }
  const resync = () => load();
  ctx.live.addEventListener("resync", resync);

  load();
  return () => {
    stopListening();
    ctx.live.removeEventListener("resync", resync);
    typed.cancel();
    if (loadController) loadController.abort();
    pending.length = 0;
  };
}
