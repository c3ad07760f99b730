// #/jobs/{id}: one job — its schedule in words, the next runs in its zone and the viewer's,
// the run history (live), and run now / pause / resume / edit / delete.

import { ApiError, del, detailLines, get, page, post } from "./api.js";
import {
  announce,
  badge,
  confirmDialog,
  definitionList,
  h,
  jsonValue,
  notice,
  pageHeading,
  replace,
  spinner,
} from "./dom.js";
import {
  JOB_TYPE_WORDS,
  VIEWER_ZONE,
  describeScheduleLocally,
  formatDateTime,
  formatDuration,
  keepLastRun,
  nextRunEstimate,
  spanInWords,
  timeElement,
} from "./format.js";

const HISTORY_PAGE = 25;
// Live runs are added at the top; past this many rows the oldest go (a page open for hours).
const HISTORY_MAX_ROWS = 500;
const UPCOMING_COUNT = 5;
const UPCOMING_MIN_GAP_MS = 5000;
const OVERLAP_WORDS = {
  allow: "Allowed",
  forbid: "Skipped while a run is under way",
  buffer_one: "One waits for the running one",
  replace: "The new one replaces the running one",
};
const TRIGGER_WORDS = { scheduled: "Scheduled", manual: "Manual", retry: "Retry", backfill: "Backfill" };
const FINAL = new Set(["completed", "failed", "missed", "skipped", "dead_lettered", "cancelled"]);

function scheduleSignature(job) {
  return JSON.stringify([
    job.job_type,
    job.cron_expression,
    job.interval_seconds,
    job.scheduled_time,
    job.calendar_rule,
    job.timezone,
    job.start_time,
    job.end_time,
    job.is_active,
  ]);
}

/** The body of POST /schedules/preview for a stored job, starting at its next run. */
export function previewBody(job, count = UPCOMING_COUNT) {
  const body = {
    job_type: job.job_type,
    timezone: job.timezone,
    cron_expression: job.cron_expression,
    interval_seconds: job.interval_seconds,
    scheduled_time: job.scheduled_time,
    calendar_rule: job.calendar_rule,
    start_time: job.start_time,
    end_time: job.end_time,
    count,
  };
  // An interval job counts from its start, or from its creation: anchor the preview there.
  // The preview starts now (not at next_run_at: runs due within the minute are already
  // queued, and next_run_at is the first one after them).
  if (job.job_type === "interval" && !job.start_time) body.start_time = job.created_at;
  return body;
}

function sortKey(execution) {
  return [execution.scheduled_for || "", execution.attempt || 0, execution.created_at || ""];
}

function newer(a, b) {
  const ka = sortKey(a);
  const kb = sortKey(b);
  for (let i = 0; i < ka.length; i += 1) {
    if (ka[i] !== kb[i]) return ka[i] > kb[i];
  }
  return false;
}

function errorCell(error) {
  if (!error) return h("span", { class: "muted" }, "—");
  const type = error.type ? `${error.type}: ` : "";
  const text = `${type}${error.message || ""}`;
  if (text.length <= 90) return h("span", { class: "error-text" }, text);
  return h(
    "details",
    { class: "json" },
    h("summary", null, h("span", { class: "error-text" }, `${text.slice(0, 89)}…`)),
    h("pre", { class: "code-block" }, text),
  );
}

function executionRow(execution, zone) {
  const statusCell = [badge(execution.status)];
  if (execution.reason) statusCell.push(h("span", { class: "table__sub" }, execution.reason));
  if (execution.missed_count && execution.missed_count > 1) {
    statusCell.push(h("span", { class: "table__sub" }, `${execution.missed_count} runs`));
  }
  const cells = [
    ["Status", statusCell],
    ["Trigger", TRIGGER_WORDS[execution.trigger] || execution.trigger],
    ["Attempt", String(execution.attempt)],
    [
      "Scheduled for",
      h("span", { class: "stack-xs" }, timeElement(execution.scheduled_for), h("span", { class: "table__sub" }, formatDateTime(execution.scheduled_for, zone, "plain"))),
    ],
    ["Started", execution.started_at ? timeElement(execution.started_at) : h("span", { class: "muted" }, "—")],
    ["Duration", execution.status === "running" ? h("span", { class: "muted" }, "running…") : formatDuration(execution.duration_seconds)],
    ["Error", errorCell(execution.error)],
    ["Result", jsonValue(execution.result, { max: 60 })],
  ];
  return h(
    "tr",
    { dataset: { executionId: execution.id, status: execution.status } },
    cells.map(([label, content]) => h("td", { dataset: { label } }, h("div", { class: "cell" }, content))),
  );
}

export function render(ctx) {
  const id = Number(ctx.params.id);
  ctx.setTitle(`Job #${id}`);
  let job = null;
  let deleted = false;
  const executions = new Map();
  let historyCursor = null;
  let trimmed = false; // older rows were dropped: "Load older runs" would leave a gap
  let buffering = true; // live events wait in `pending` while the history is (re)read
  const pending = [];
  let upcomingAt = 0;
  let upcomingTimer = null;
  let lastSignature = null;
  let lastNextRun = null;
  let lastTaskShown = null;
  const watchedRuns = new Set(); // manual runs started here: their outcome is announced

  const title = pageHeading(`Job #${id}`);
  const statusSlot = h("span", { class: "page-head__status", id: "job-status-slot" });
  const subtitle = h("p", { class: "page-sub" });
  const feedback = h("div", { class: "feedback", "aria-live": "polite" });
  const runButton = h("button", { type: "button", class: "btn btn--primary", id: "run-now" }, h("span", { "aria-hidden": "true" }, "▶ "), "Run now");
  const pauseButton = h("button", { type: "button", class: "btn btn--secondary", id: "pause-resume" }, "Pause");
  const editLink = h("a", { href: `#/jobs/${id}/edit`, class: "btn btn--secondary", id: "edit-job" }, "Edit");
  const deleteButton = h("button", { type: "button", class: "btn btn--danger-outline", id: "delete-job" }, "Delete");
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Job actions" }, runButton, pauseButton, editLink, deleteButton);

  const scheduleBody = h("div", { class: "card__body" });
  const upcomingBody = h("div", { class: "card__body" });
  const taskBody = h("div", { class: "card__body" });
  const historyBody = h("tbody");
  const historyStatus = h("p", { class: "table-status", role: "status" });
  const historyError = h("div");
  const historyTable = h(
    "table",
    { class: "table table--stack table--history", id: "history" },
    h("caption", { class: "visually-hidden" }, "Run history, newest first"),
    h("thead", null, h("tr", null, ["Status", "Trigger", "Attempt", "Scheduled for", "Started", "Duration", "Error", "Result"].map((t) => h("th", { scope: "col" }, t)))),
    historyBody,
  );
  const moreButton = h("button", { type: "button", class: "btn btn--secondary", hidden: true }, "Load older runs");
  const liveNote = h("span", { class: "card__note" });
  const main = h("div", { class: "job-page", hidden: true });
  const loading = spinner("Loading the job");
  const loadError = h("div");

  actions.hidden = true;
  main.append(
    feedback,
    h(
      "div",
      { class: "grid grid--2" },
      h("section", { class: "card", "aria-labelledby": "schedule-title" }, h("h2", { id: "schedule-title", class: "card__title" }, "Schedule"), scheduleBody),
      h("section", { class: "card", "aria-labelledby": "upcoming-title" }, h("h2", { id: "upcoming-title", class: "card__title" }, "Next runs"), upcomingBody),
    ),
    h(
      "section",
      { class: "card card--flush", "aria-labelledby": "history-title" },
      h("div", { class: "card__head" }, h("h2", { id: "history-title", class: "card__title" }, "Run history"), liveNote),
      historyError,
      historyStatus,
      h("div", { class: "table-wrap" }, historyTable),
      h("div", { class: "card__foot" }, moreButton),
    ),
    h("section", { class: "card", "aria-labelledby": "task-title" }, h("h2", { id: "task-title", class: "card__title" }, "Task and policies"), taskBody),
  );
  ctx.root.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "← All jobs")),
    h(
      "div",
      { class: "page-head page-head--job" },
      h("div", { class: "page-head__title" }, title, statusSlot),
      actions,
    ),
    subtitle,
    loading,
    loadError,
    main,
  );

  // -- the job ---------------------------------------------------------------------------

  function showFeedback(kind, titleText, detail) {
    replace(feedback, notice(kind, titleText, detail));
  }

  function renderJob() {
    title.textContent = job.name;
    ctx.setTitle(job.name);
    replace(statusSlot, h("span", { id: "job-status" }, badge(job.status)));
    replace(
      subtitle,
      `#${job.id} · ${JOB_TYPE_WORDS[job.job_type] || job.job_type} job · `,
      h("code", { class: "code-inline" }, job.task_name),
      job.tags && job.tags.length ? h("ul", { class: "tags tags--inline", "aria-label": "Tags" }, job.tags.map((t) => h("li", { class: "tag" }, t))) : null,
    );
    pauseButton.textContent = job.is_active ? "Pause" : "Resume";
    pauseButton.setAttribute("aria-label", job.is_active ? `Pause ${job.name}` : `Resume ${job.name}`);
    for (const el of [runButton, pauseButton, deleteButton]) el.disabled = deleted;
    editLink.hidden = deleted;
    renderSchedule();
    // The task card holds disclosures (long JSON): redrawn only when what it shows changes.
    const taskShown = JSON.stringify([job.description, job.task_name, job.task_args, job.task_kwargs, job.max_retries, job.retry_delay, job.retry_backoff, job.priority, job.concurrency_policy, job.misfire_grace_seconds, job.metadata, job.updated_at]);
    if (taskShown !== lastTaskShown) {
      lastTaskShown = taskShown;
      renderTask();
    }
    if (deleted) return;
    const signature = scheduleSignature(job);
    if (signature !== lastSignature) {
      lastSignature = signature;
      lastNextRun = job.next_run_at;
      refreshUpcoming(true);
    } else if (job.next_run_at !== lastNextRun) {
      lastNextRun = job.next_run_at;
      refreshUpcoming(false);
    }
  }

  const describeSlot = h("p", { class: "schedule-words", id: "schedule-words" });

  function renderSchedule() {
    const zone = job.timezone;
    const local = describeScheduleLocally(job);
    if (local) describeSlot.textContent = local;
    else if (!describeSlot.textContent) describeSlot.textContent = "…";
    let definition = null;
    if (job.job_type === "cron") definition = h("code", { class: "code-inline code-inline--lg" }, job.cron_expression);
    else if (job.job_type === "interval") definition = `${job.interval_seconds} s (${spanInWords(job.interval_seconds)})`;
    else if (job.job_type === "date") definition = formatDateTime(job.scheduled_time, zone, "zone");
    else if (job.job_type === "calendar") definition = h("pre", { class: "code-block" }, job.calendar_rule);
    replace(
      scheduleBody,
      describeSlot,
      job.schedule_error ? notice("error", "The scheduler cannot evaluate this schedule", job.schedule_error) : null,
      job.overdue_since ? notice("warning", "Overdue", `No run has succeeded within ${spanInWords(job.expect_success_within)} (since ${job.overdue_since}). Last success: ${job.last_success_at || "never"}.`) : null,
      deleted ? notice("warning", "This job was deleted", "It no longer runs. Its history is removed shortly.") : null,
      definitionList([
        [JOB_TYPE_WORDS[job.job_type] || "Schedule", definition],
        ["Time zone", zone],
        ["Starts", job.start_time ? formatDateTime(job.start_time, zone, "zone") : null],
        ["Ends", job.end_time ? formatDateTime(job.end_time, zone, "zone") : null],
        ["Next run", nextRunSlot],
        [
          "Last run",
          job.last_run_at
            ? h("span", { class: "stack-xs" }, job.last_run_status ? badge(job.last_run_status) : null, timeElement(job.last_run_at, { zone }))
            : h("span", { class: "muted" }, "Never"),
        ],
        ["Running now", job.running_count ? String(job.running_count) : null],
      ]),
    );
    showNextRun(nextRunEstimate(job));
    if (job.job_type === "cron") describeCron();
  }

  const nextRunSlot = h("span", { id: "next-run" });
  function showNextRun(at) {
    const zone = job.timezone;
    if (at && job.is_active && !deleted) {
      replace(nextRunSlot, h("span", { class: "stack-xs" }, timeElement(at, { zone }), h("span", { class: "table__sub" }, formatDateTime(at, zone, "zone"))));
    } else {
      replace(nextRunSlot, h("span", { class: "muted" }, !job.is_active ? "None while paused" : deleted ? "None" : "None: the schedule has no run ahead"));
    }
  }

  let describedFor = null;
  async function describeCron() {
    const key = `${job.cron_expression}|${job.timezone}`;
    if (describedFor === key) return;
    describedFor = key;
    try {
      const answer = await post("/cron/validate", { expression: job.cron_expression, timezone: job.timezone, count: 1 }, { signal: ctx.signal });
      describeSlot.textContent = answer.is_valid ? answer.description : `Not a valid expression: ${answer.error}`;
    } catch (error) {
      if (error.name === "AbortError") return;
      describedFor = null;
      describeSlot.textContent = `Cron expression ${job.cron_expression}`;
    }
  }

  function renderTask() {
    replace(
      taskBody,
      job.description ? h("p", { class: "job-description" }, job.description) : null,
      definitionList([
        ["Task", h("code", { class: "code-inline" }, job.task_name)],
        ["Arguments", jsonValue(job.task_args)],
        ["Keyword arguments", jsonValue(job.task_kwargs)],
        ["Retries", job.max_retries ? `${job.max_retries}, ${job.retry_delay} s apart${job.retry_backoff ? ", doubling each time" : ""}` : "None"],
        ["Priority", String(job.priority)],
        ["Overlapping runs", OVERLAP_WORDS[job.concurrency_policy] || job.concurrency_policy],
        ["Paused", job.paused_until || job.paused_note ? [job.paused_note, job.paused_until ? `until ${job.paused_until}` : null].filter(Boolean).join(", ") : null],
        ["Expects a success", job.expect_success_within ? `within ${spanInWords(job.expect_success_within)}` : null],
        ["Last success", job.last_success_at ? timeElement(job.last_success_at) : null],
        ["Late start allowed", job.misfire_grace_seconds ? spanInWords(job.misfire_grace_seconds) : "No"],
        ["Metadata", job.metadata && Object.keys(job.metadata).length ? jsonValue(job.metadata) : null],
        ["Created", h("span", { class: "stack-xs" }, timeElement(job.created_at), job.created_by ? h("span", { class: "table__sub" }, `by ${job.created_by}`) : null)],
        ["Updated", timeElement(job.updated_at)],
      ]),
    );
  }

  // -- next runs ------------------------------------------------------------------------------

  function refreshUpcoming(now) {
    window.clearTimeout(upcomingTimer);
    const wait = now ? 0 : Math.max(0, upcomingAt + UPCOMING_MIN_GAP_MS - Date.now());
    upcomingTimer = window.setTimeout(loadUpcoming, wait);
  }

  // The runs shown move into the past: drop them as they do, and ask again when few are left.
  function pruneUpcoming() {
    const table = upcomingBody.querySelector("#upcoming tbody");
    if (!table || !job || deleted) return;
    const now = Date.now();
    for (const rowEl of [...table.rows]) {
      if (Date.parse(rowEl.dataset.at) < now - 1000) rowEl.remove();
    }
    if (table.rows.length < 3) refreshUpcoming(false);
  }
  const pruneTimer = window.setInterval(pruneUpcoming, 1000);

  async function loadUpcoming() {
    upcomingAt = Date.now();
    const zone = job.timezone;
    const sameZone = zone === VIEWER_ZONE;
    const intro = job.is_active
      ? null
      : h("p", { class: "muted" }, "The job is paused. When resumed, it would run at:");
    let runs;
    try {
      ({ next_runs: runs } = await post("/schedules/preview", previewBody(job), { signal: ctx.signal }));
    } catch (error) {
      if (error.name === "AbortError") return;
      replace(upcomingBody, notice("error", "The next runs could not be worked out", detailLines(error)));
      return;
    }
    if (job.is_active && runs.length) showNextRun(runs[0]);
    if (!runs.length) {
      replace(upcomingBody, h("p", { class: "muted" }, "No run ahead: the schedule has ended."));
      return;
    }
    const head = [h("th", { scope: "col" }, "When")];
    head.push(h("th", { scope: "col" }, sameZone ? `Time (${zone}, your zone too)` : `Job's time (${zone})`));
    if (!sameZone) head.push(h("th", { scope: "col" }, `Your time (${VIEWER_ZONE})`));
    replace(
      upcomingBody,
      intro,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table table--compact table--stack", id: "upcoming" },
          h("caption", { class: "visually-hidden" }, `The next ${runs.length} runs`),
          h("thead", null, h("tr", null, head)),
          h(
            "tbody",
            null,
            runs.map((run) =>
              h(
                "tr",
                { dataset: { at: run } },
                h("td", { dataset: { label: "When" } }, timeElement(run)),
                h("td", { dataset: { label: sameZone ? "Time" : "Job's time" } }, formatDateTime(run, zone)),
                sameZone ? null : h("td", { dataset: { label: "Your time" } }, formatDateTime(run, VIEWER_ZONE)),
              ),
            ),
          ),
        ),
      ),
    );
  }

  // -- history ----------------------------------------------------------------------------------

  function flash(el) {
    el.classList.remove("row--flash");
    void el.offsetWidth;
    el.classList.add("row--flash");
  }

  function showHistoryCount() {
    const n = executions.size;
    historyTable.hidden = n === 0;
    historyStatus.textContent = n === 0
      ? "No runs yet. Runs appear here as they happen."
      : `${n} run${n === 1 ? "" : "s"} shown, newest first${trimmed ? ` (the latest ${HISTORY_MAX_ROWS}; reload the page for older ones)` : ""}.`;
    if (trimmed) moreButton.hidden = true;
  }

  function upsertExecution(execution, { live = false } = {}) {
    const zone = job ? job.timezone : "UTC";
    const existing = historyBody.querySelector(`tr[data-execution-id="${CSS.escape(execution.id)}"]`);
    const previous = executions.get(execution.id);
    // An event may come twice or late: never replace a final state with an earlier one.
    if (previous && FINAL.has(previous.status) && !FINAL.has(execution.status)) return;
    executions.set(execution.id, execution);
    const fresh = executionRow(execution, zone);
    if (existing) {
      existing.replaceWith(fresh);
    } else {
      let placed = false;
      for (const rowEl of historyBody.children) {
        const other = executions.get(rowEl.dataset.executionId);
        if (other && newer(execution, other)) {
          rowEl.before(fresh);
          placed = true;
          break;
        }
      }
      if (!placed) historyBody.append(fresh);
    }
    if (live) flash(fresh);
    while (historyBody.rows.length > HISTORY_MAX_ROWS) {
      const last = historyBody.rows[historyBody.rows.length - 1];
      executions.delete(last.dataset.executionId);
      last.remove();
      trimmed = true;
    }
    showHistoryCount();
  }

  async function loadHistory({ more = false } = {}) {
    moreButton.disabled = true;
    replace(historyError);
    if (!more) {
      historyStatus.textContent = "Loading the run history…";
      buffering = true;
    }
    try {
      const found = await page(`/jobs/${id}/executions`, { limit: HISTORY_PAGE, cursor: more ? historyCursor : null }, { signal: ctx.signal });
      if (!more) {
        executions.clear();
        replace(historyBody);
      }
      for (const execution of found.items) upsertExecution(execution);
      historyCursor = found.next;
      showHistoryCount();
    } catch (error) {
      if (error.name === "AbortError") return;
      replace(historyError, notice("error", "The run history could not be loaded", detailLines(error), {
        actions: h("button", { type: "button", class: "btn btn--secondary", onclick: () => loadHistory({ more }) }, "Try again"),
      }));
      historyStatus.textContent = "";
    }
    moreButton.hidden = !historyCursor || trimmed;
    moreButton.disabled = false;
    if (!more) flushPending();
  }

  moreButton.addEventListener("click", () => loadHistory({ more: true }));

  // -- actions --------------------------------------------------------------------------------

  async function refetchJob() {
    try {
      job = await get(`/jobs/${id}`, { signal: ctx.signal });
      renderJob();
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error instanceof ApiError && error.status === 404) markDeleted();
    }
  }

  runButton.addEventListener("click", async () => {
    runButton.disabled = true;
    try {
      const answer = await post(`/jobs/${id}/execute`, {}, { signal: ctx.signal });
      watchedRuns.add(answer.execution_id);
      showFeedback("success", "Run queued", `The run appears in the history below as it happens (execution ${answer.execution_id}).`);
      announce("Run queued.");
      if (!ctx.live.connected) loadHistory();
    } catch (error) {
      if (error.name === "AbortError") return;
      showFeedback("error", error instanceof ApiError ? `Could not run the job: ${error.title.toLowerCase()}` : "Could not run the job", detailLines(error));
    } finally {
      runButton.disabled = deleted;
    }
  });

  pauseButton.addEventListener("click", async () => {
    const pausing = job.is_active;
    pauseButton.disabled = true;
    try {
      await post(`/jobs/${id}/${pausing ? "pause" : "resume"}`, {}, { signal: ctx.signal });
      replace(feedback);
      announce(pausing ? "Job paused." : "Job resumed.");
      await refetchJob();
    } catch (error) {
      if (error.name === "AbortError") return;
      showFeedback("error", `Could not ${pausing ? "pause" : "resume"} the job`, detailLines(error));
    } finally {
      pauseButton.disabled = deleted;
      pauseButton.focus();
    }
  });

  deleteButton.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: `Delete “${job.name}”?`,
      message: [
        h("p", null, "The job stops running at once, and its run history is removed. This cannot be undone."),
      ],
      confirmLabel: "Delete job",
      danger: true,
    });
    if (!ok) return;
    deleteButton.disabled = true;
    try {
      await del(`/jobs/${id}`, { signal: ctx.signal });
      announce(`Job “${job.name}” deleted.`);
      ctx.navigate("#/jobs");
    } catch (error) {
      if (error.name === "AbortError") return;
      showFeedback("error", "Could not delete the job", detailLines(error));
      deleteButton.disabled = false;
    }
  });

  function markDeleted() {
    if (deleted) return;
    deleted = true;
    window.clearTimeout(upcomingTimer);
    renderJob();
    replace(upcomingBody, h("p", { class: "muted" }, "None: the job was deleted."));
    announce("This job was deleted.", { assertive: true });
  }

  // -- live -----------------------------------------------------------------------------------

  function liveText() {
    liveNote.textContent = ctx.live.connected ? "Updates live" : "";
  }
  const onState = () => liveText();
  ctx.live.addEventListener("state", onState);
  liveText();

  // Until the job and its history are loaded (and while the history is read again), events
  // wait: what was read may predate them, and drawing it would otherwise undo them.
  function flushPending() {
    buffering = false;
    for (const event of pending.splice(0)) handleEvent(event);
  }

  function handleEvent(event) {
    if (!job) return;
    if (event.type.startsWith("run.") && event.data) {
      upsertExecution(event.data, { live: true });
      // What a run changes on its job (status, last run) comes in the run's own events.
      const ended = event.type === "run.succeeded" || event.type === "run.failed";
      if ((ended || event.type === "run.started") && !deleted && !event.replay) {
        const outcome = event.type === "run.succeeded" ? "completed" : "failed";
        const later = !job.last_run_at || (event.data.started_at || "") >= job.last_run_at;
        if (event.type === "run.started") {
          if (job.is_active) job = { ...job, status: "running" };
        } else if (later) {
          job = {
            ...job,
            status: job.is_active ? outcome : job.status,
            last_run_at: event.data.started_at || job.last_run_at,
            last_run_status: outcome,
          };
        }
        renderJob();
      }
      if (watchedRuns.has(event.data.id) && FINAL.has(event.data.status)) {
        watchedRuns.delete(event.data.id);
        const word = event.data.status === "completed" ? "succeeded" : event.data.status.replace("_", " ");
        announce(`The manual run ${word}.`, { assertive: event.data.status === "failed" });
      }
    } else if (event.type === "job.deleted") {
      if (event.data) job = event.data;
      markDeleted();
    } else if (event.type.startsWith("job.") && event.data && !deleted) {
      const was = job.is_active;
      job = keepLastRun(job, event.data);
      renderJob();
      if (was !== job.is_active && !event.replay) announce(job.is_active ? "Job resumed." : "Job paused.");
    }
  }

  const stopListening = ctx.live.on(
    (event) => {
      if (buffering) pending.push(event);
      else handleEvent(event);
    },
    { jobId: id },
  );
  const resync = () => {
    refetchJob();
    loadHistory();
  };
  ctx.live.addEventListener("resync", resync);

  // -- first load -----------------------------------------------------------------------------

  (async () => {
    try {
      job = await get(`/jobs/${id}`, { signal: ctx.signal });
    } catch (error) {
      if (error.name === "AbortError") return;
      loading.remove();
      const missing = error instanceof ApiError && error.status === 404;
      title.textContent = missing ? "Job not found" : `Job #${id}`;
      ctx.setTitle(title.textContent);
      replace(
        loadError,
        notice(missing ? "warning" : "error", missing ? `There is no job #${id}. It may have been deleted.` : error.title, missing ? null : detailLines(error), {
          actions: h("a", { href: "#/jobs", class: "btn btn--secondary" }, "Back to the jobs"),
        }),
      );
      return;
    }
    loading.remove();
    main.hidden = false;
    actions.hidden = false;
    renderJob();
    loadHistory();
  })();

  return () => {
    stopListening();
    ctx.live.removeEventListener("state", onState);
    ctx.live.removeEventListener("resync", resync);
    window.clearTimeout(upcomingTimer);
    window.clearInterval(pruneTimer);
  };
}
