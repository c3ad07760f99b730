// #/new and #/jobs/{id}/edit: the job form. The schedule is checked as it is typed (debounced
// POST /cron/validate and /schedules/preview): the API's own words show next to the field, and
// the next runs are previewed. On submit, every problem the API names is shown at its field.

import { ApiError, detailLines, get, post, put } from "./api.js";
import { announce, debounce, h, nextId, notice, pageHeading, replace, spinner } from "./dom.js";
import {
  JOB_TYPE_WORDS,
  VIEWER_ZONE,
  describeInterval,
  formatDateTime,
  fromLocalInput,
  knownZone,
  toLocalInput,
  zoneNames,
} from "./format.js";

const CHECK_DELAY_MS = 400;
const PREVIEW_COUNT = 5;
// The built-in tasks (chalicelib/tasks/builtin.py): suggestions only; the API names every
// registered task when another is given.
const KNOWN_TASKS = [
  "nexus.echo", "nexus.sleep", "nexus.fail", "nexus.http_request", "tasks.generate_report",
  "aws.lambda.invoke", "aws.sqs.send", "aws.sns.publish", "aws.stepfunctions.start", "aws.events.put",
];
const SCHEDULE_FIELD = { cron: "cron_expression", interval: "interval_seconds", date: "scheduled_time", calendar: "calendar_rule" };
const SCHEDULE_INPUTS = ["job_type", ...Object.values(SCHEDULE_FIELD), "timezone", "start_time", "end_time"];
const TYPE_HINTS = {
  cron: "Minute, hour, day of month, month, day of week",
  interval: "Every so many seconds, minutes, hours or days",
  date: "Once, at a date and time",
  calendar: "An RFC 5545 rule, such as the last weekday of each month",
};
const UNITS = [
  ["seconds", 1],
  ["minutes", 60],
  ["hours", 3600],
  ["days", 86400],
];
const FIELD_LABELS = {
  name: "Name",
  description: "Description",
  tags: "Tags",
  job_type: "Schedule type",
  cron_expression: "Cron expression",
  interval_seconds: "Interval",
  scheduled_time: "Run at",
  calendar_rule: "Calendar rule",
  timezone: "Time zone",
  start_time: "Starts",
  end_time: "Ends",
  task_name: "Task",
  task_args: "Arguments",
  task_kwargs: "Keyword arguments",
  is_active: "Active",
  max_retries: "Retries",
  retry_delay: "Retry delay",
  retry_backoff: "Back off",
  priority: "Priority",
  misfire_grace_seconds: "Late start allowed",
  concurrency_policy: "Overlapping runs",
  metadata: "Metadata",
  created_by: "Created by",
};

export function render(ctx) {
  const editing = ctx.params && ctx.params.id ? Number(ctx.params.id) : null;
  ctx.setTitle(editing ? `Edit job #${editing}` : "New job");
  const title = pageHeading(editing ? `Edit job #${editing}` : "New job");
  const controls = {}; // field name → the element holding its value
  const fieldEls = {}; // field name → its .field wrapper
  const checkerErrors = new Set(); // fields whose error came from the as-you-type check
  let checkSeq = 0;
  let checkController = null;
  let job = null;

  // -- fields ----------------------------------------------------------------------------------

  function field(name, label, control, { help, required = false, wide = false, extra = null } = {}) {
    control.id = control.id || `f-${name}`;
    const helpId = `help-${name}`;
    const errId = `err-${name}`;
    const describedBy = [help ? helpId : null, errId].filter(Boolean).join(" ");
    control.setAttribute("aria-describedby", describedBy);
    if (required) control.setAttribute("aria-required", "true");
    controls[name] = controls[name] || control;
    const wrapper = h(
      "div",
      { class: ["field", wide ? "field--wide" : null], dataset: { field: name } },
      h("label", { for: control.id, class: "field__label" }, label, required ? h("span", { class: "field__req", "aria-hidden": "true" }, " *") : null),
      extra ? h("div", { class: "input-group" }, control, extra) : control,
      help ? h("p", { id: helpId, class: "field__help" }, help) : null,
      h("p", { id: errId, class: "field__error", hidden: true }),
    );
    fieldEls[name] = wrapper;
    return wrapper;
  }

  function input(props) {
    return h("input", { class: "input", autocomplete: "off", ...props });
  }
  function textarea(props) {
    return h("textarea", { class: "input", spellcheck: "false", ...props });
  }

  const name = input({ name: "name", maxlength: "200", required: true });
  const description = textarea({ name: "description", rows: "2", maxlength: "2000" });
  const tags = input({ name: "tags", placeholder: "report, daily" });

  // The schedule type: a radio group.
  const typeName = nextId("job-type");
  const typeRadios = Object.entries(JOB_TYPE_WORDS).map(([value, word]) => {
    const radio = h("input", { type: "radio", name: typeName, value, id: `f-type-${value}`, class: "choice__input" });
    return h(
      "label",
      { class: "choice", for: radio.id },
      radio,
      h("span", { class: "choice__body" }, h("span", { class: "choice__title" }, word), h("span", { class: "choice__hint" }, TYPE_HINTS[value])),
    );
  });
  const typeError = h("p", { id: "err-job_type", class: "field__error", hidden: true });
  const typeGroup = h(
    "fieldset",
    { class: "field field--wide choices", dataset: { field: "job_type" }, "aria-describedby": "err-job_type" },
    h("legend", { class: "field__label" }, "Schedule type"),
    h("div", { class: "choices__list" }, typeRadios),
    typeError,
  );
  fieldEls.job_type = typeGroup;
  controls.job_type = typeGroup;
  const jobType = () => {
    const checked = typeGroup.querySelector("input:checked");
    return checked ? checked.value : "cron";
  };
  const setJobType = (value) => {
    const radio = typeGroup.querySelector(`input[value="${value}"]`);
    if (radio) radio.checked = true;
  };

  const cron = input({ name: "cron_expression", class: "input input--mono", placeholder: "0 9 * * 1-5", spellcheck: "false", maxlength: "200" });
  const presets = h("select", { class: "input input--auto", id: "f-cron-preset", "aria-label": "Insert a preset" }, h("option", { value: "" }, "Presets…"));
  const cronWords = h("p", { class: "field__words", id: "cron-words" });

  const intervalValue = input({ name: "interval_value", type: "number", min: "1", step: "1", inputmode: "numeric", class: "input input--narrow" });
  intervalValue.id = "f-interval_seconds";
  const intervalUnit = h("select", { class: "input input--auto", id: "f-interval-unit", "aria-label": "Unit" }, UNITS.map(([word, n]) => h("option", { value: String(n) }, word)));
  const intervalWords = h("p", { class: "field__words", id: "interval-words" });

  const scheduledTime = input({ name: "scheduled_time", type: "datetime-local", step: "1" });
  const calendarRule = textarea({ name: "calendar_rule", class: "input input--mono", rows: "3", placeholder: "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;BYHOUR=17" });
  const zoneListId = nextId("zones");
  const timezone = input({ name: "timezone", list: zoneListId, value: VIEWER_ZONE, spellcheck: "false" });
  const startTime = input({ name: "start_time", type: "datetime-local", step: "1" });
  const endTime = input({ name: "end_time", type: "datetime-local", step: "1" });

  const taskListId = nextId("tasks");
  const taskName = input({ name: "task_name", list: taskListId, placeholder: "nexus.echo", spellcheck: "false", class: "input input--mono" });
  const taskArgs = textarea({ name: "task_args", class: "input input--mono", rows: "2", value: "[]" });
  const taskKwargs = textarea({ name: "task_kwargs", class: "input input--mono", rows: "3", value: "{}" });

  const isActive = h("input", { type: "checkbox", name: "is_active", id: "f-is_active", checked: true });
  const maxRetries = input({ name: "max_retries", type: "number", min: "0", max: "10", step: "1", value: "0", class: "input input--narrow" });
  const retryDelay = input({ name: "retry_delay", type: "number", min: "0", step: "1", value: "60", class: "input input--narrow" });
  const retryBackoff = h("input", { type: "checkbox", name: "retry_backoff", id: "f-retry_backoff", checked: true });
  const priority = input({ name: "priority", type: "number", min: "0", max: "10", step: "1", value: "5", class: "input input--narrow" });
  const misfire = input({ name: "misfire_grace_seconds", type: "number", min: "0", step: "1", value: "300", class: "input input--narrow" });
  const concurrency = h(
    "select",
    { class: "input input--auto", name: "concurrency_policy" },
    h("option", { value: "allow" }, "Allowed"),
    h("option", { value: "forbid" }, "Skipped while a run is under way"),
    h("option", { value: "buffer_one" }, "One waits for the running one"),
    h("option", { value: "replace" }, "The new one replaces the running one"),
  );
  const metadata = textarea({ name: "metadata", class: "input input--mono", rows: "2", value: "{}" });

  const checkbox = (nameKey, control, label, help) => {
    const helpId = `help-${nameKey}`;
    control.setAttribute("aria-describedby", `${helpId} err-${nameKey}`);
    controls[nameKey] = control;
    const wrapper = h(
      "div",
      { class: "field field--check", dataset: { field: nameKey } },
      h("div", { class: "check" }, control, h("label", { for: control.id }, label)),
      h("p", { id: helpId, class: "field__help" }, help),
      h("p", { id: `err-${nameKey}`, class: "field__error", hidden: true }),
    );
    fieldEls[nameKey] = wrapper;
    return wrapper;
  };

  const scheduleFields = {
    cron: h(
      "div",
      { class: "type-fields", dataset: { type: "cron" } },
      field("cron_expression", "Cron expression", cron, {
        required: true,
        wide: true,
        help: "Five fields: minute hour day-of-month month day-of-week (a sixth, leading field is seconds). Macros such as @daily work too.",
        extra: presets,
      }),
    ),
    interval: h(
      "div",
      { class: "type-fields", dataset: { type: "interval" } },
      field("interval_seconds", "Every", intervalValue, { required: true, extra: intervalUnit, help: "A whole number; at least one second." }),
    ),
    date: h(
      "div",
      { class: "type-fields", dataset: { type: "date" } },
      field("scheduled_time", "Run at", scheduledTime, { required: true, help: "In the job's time zone." }),
    ),
    calendar: h(
      "div",
      { class: "type-fields", dataset: { type: "calendar" } },
      field("calendar_rule", "Calendar rule", calendarRule, {
        required: true,
        wide: true,
        help: "An RFC 5545 rule in the job's wall-clock time: a bare rule (FREQ=WEEKLY;BYDAY=MO;BYHOUR=9) or DTSTART / RRULE / RDATE / EXDATE lines.",
      }),
    ),
  };
  fieldEls.cron_expression.insertBefore(cronWords, fieldEls.cron_expression.querySelector(".field__help"));
  fieldEls.interval_seconds.insertBefore(intervalWords, fieldEls.interval_seconds.querySelector(".field__help"));
  controls.interval_seconds = intervalValue;

  const previewStatus = h("p", { class: "preview__status", id: "preview-status", role: "status", "aria-live": "polite" });
  const previewList = h("ol", { class: "preview__list", id: "preview-runs" });
  const preview = h(
    "aside",
    { class: "preview", "aria-labelledby": "preview-title" },
    h("h3", { id: "preview-title", class: "preview__title" }, "Next runs"),
    previewStatus,
    previewList,
  );

  const summary = h("div", { class: "error-summary", tabindex: "-1", hidden: true, id: "form-errors" });
  const submit = h("button", { type: "submit", class: "btn btn--primary", id: "submit-job" }, editing ? "Save changes" : "Create job");
  const cancel = h("a", { href: editing ? `#/jobs/${editing}` : "#/jobs", class: "btn btn--ghost" }, "Cancel");

  const form = h(
    "form",
    { class: "job-form", novalidate: true, "aria-labelledby": "form-title" },
    summary,
    h(
      "fieldset",
      { class: "card form-section" },
      h("legend", { class: "form-section__title" }, "Job"),
      h(
        "div",
        { class: "form-grid" },
        field("name", "Name", name, { required: true }),
        field("tags", "Tags", tags, { help: "Comma-separated, for filtering." }),
        field("description", "Description", description, { wide: true }),
      ),
    ),
    h(
      "fieldset",
      { class: "card form-section" },
      h("legend", { class: "form-section__title" }, "Schedule"),
      h(
        "div",
        { class: "schedule-layout" },
        h(
          "div",
          { class: "form-grid" },
          typeGroup,
          h("div", { class: "field--wide" }, Object.values(scheduleFields)),
          field("timezone", "Time zone", timezone, { required: true, help: "An IANA name such as Europe/Paris; the schedule follows its clock." }),
          h("div", { class: "field-pair" }, field("start_time", "Starts (optional)", startTime, { help: "No run before." }), field("end_time", "Ends (optional)", endTime, { help: "No run after." })),
        ),
        preview,
      ),
    ),
    h(
      "fieldset",
      { class: "card form-section" },
      h("legend", { class: "form-section__title" }, "Task"),
      h(
        "div",
        { class: "form-grid" },
        field("task_name", "Task", taskName, { required: true, help: "A registered task, such as nexus.echo or nexus.http_request." }),
        field("task_args", "Arguments", taskArgs, { help: "A JSON array." }),
        field("task_kwargs", "Keyword arguments", taskKwargs, { wide: true, help: "A JSON object. Credentials show as *** and are kept when left so." }),
      ),
    ),
    h(
      "fieldset",
      { class: "card form-section" },
      h("legend", { class: "form-section__title" }, "Policies"),
      h(
        "div",
        { class: "form-grid form-grid--3" },
        checkbox("is_active", isActive, "Active", "Paused jobs do not run."),
        field("priority", "Priority", priority, { help: "0 to 10." }),
        field("concurrency_policy", "Overlapping runs", concurrency),
        field("max_retries", "Retries", maxRetries, { help: "0 to 10 after a failure." }),
        field("retry_delay", "Retry delay (s)", retryDelay),
        checkbox("retry_backoff", retryBackoff, "Back off", "Double the delay after each retry."),
        field("misfire_grace_seconds", "Late start allowed (s)", misfire, { help: "A run this late still runs; later, it is recorded as missed." }),
        field("metadata", "Metadata", metadata, { wide: true, help: "A JSON object, kept with the job." }),
      ),
    ),
    h("div", { class: "form-actions" }, submit, cancel),
    h("datalist", { id: zoneListId }, zoneNames().map((z) => h("option", { value: z }))),
    h("datalist", { id: taskListId }, KNOWN_TASKS.map((t) => h("option", { value: t }))),
  );

  const loading = editing ? spinner("Loading the job") : null;
  const loadError = h("div");
  title.id = "form-title";
  ctx.root.append(
    h("p", { class: "crumbs" }, h("a", { href: editing ? `#/jobs/${editing}` : "#/jobs" }, editing ? "← Back to the job" : "← All jobs")),
    h("div", { class: "page-head" }, title),
    ...[loading, loadError, form].filter(Boolean),
  );
  if (editing) form.hidden = true;

  // -- errors ----------------------------------------------------------------------------------

  function setError(fieldName, message) {
    const err = document.getElementById(`err-${fieldName}`);
    if (!err || !fieldEls[fieldName]) return false;
    err.textContent = message;
    err.hidden = false;
    fieldEls[fieldName].classList.add("field--invalid");
    const control = controls[fieldName];
    if (control && control.tagName !== "FIELDSET") control.setAttribute("aria-invalid", "true");
    return true;
  }

  function clearError(fieldName) {
    const err = document.getElementById(`err-${fieldName}`);
    if (err) {
      err.textContent = "";
      err.hidden = true;
    }
    if (fieldEls[fieldName]) fieldEls[fieldName].classList.remove("field--invalid");
    const control = controls[fieldName];
    if (control && control.tagName !== "FIELDSET") control.removeAttribute("aria-invalid");
    checkerErrors.delete(fieldName);
  }

  function clearAllErrors() {
    for (const key of Object.keys(fieldEls)) clearError(key);
    summary.hidden = true;
    replace(summary);
  }

  function focusField(fieldName) {
    const control = controls[fieldName];
    if (!control) return;
    if (control.tagName === "FIELDSET") {
      const radio = control.querySelector("input:checked") || control.querySelector("input");
      if (radio) radio.focus();
    } else {
      control.focus();
    }
  }

  function showSummary(heading, items) {
    replace(
      summary,
      h("h2", { class: "error-summary__title" }, heading),
      h(
        "ul",
        { class: "error-summary__list" },
        items.map(({ field: fieldName, text }) =>
          h(
            "li",
            null,
            fieldName && fieldEls[fieldName]
              ? h("a", { href: `#f-${fieldName}`, onclick: (e) => { e.preventDefault(); focusField(fieldName); } }, `${FIELD_LABELS[fieldName] || fieldName}: ${text}`)
              : text,
          ),
        ),
      ),
    );
    summary.setAttribute("role", "alert");
    summary.hidden = false;
    summary.focus();
  }

  // -- what the form holds -------------------------------------------------------------------

  function wholeNumber(control, fieldName, problems, { optional = false } = {}) {
    const raw = control.value.trim();
    if (control.validity && control.validity.badInput) {
      problems.push({ field: fieldName, text: "enter a whole number" });
      return undefined;
    }
    if (raw === "") {
      if (optional) return null;
      problems.push({ field: fieldName, text: "enter a whole number" });
      return undefined;
    }
    if (!/^-?\d+$/.test(raw)) {
      problems.push({ field: fieldName, text: "enter a whole number" });
      return undefined;
    }
    return Number(raw);
  }

  function intervalSeconds(problems) {
    const value = wholeNumber(intervalValue, "interval_seconds", problems, { optional: true });
    if (value === null || value === undefined) return value;
    return value * Number(intervalUnit.value);
  }

  function json(control, fieldName, kind, problems) {
    const raw = control.value.trim();
    if (!raw) return kind === "array" ? [] : {};
    try {
      const value = JSON.parse(raw);
      const ok = kind === "array" ? Array.isArray(value) : value !== null && typeof value === "object" && !Array.isArray(value);
      if (!ok) {
        problems.push({ field: fieldName, text: kind === "array" ? "must be a JSON array, such as [1, \"two\"]" : "must be a JSON object, such as {\"key\": \"value\"}" });
        return undefined;
      }
      return value;
    } catch (error) {
      problems.push({ field: fieldName, text: `not valid JSON: ${error.message}` });
      return undefined;
    }
  }

  /** The schedule part of the body (for previews and the job). */
  function scheduleBody(problems) {
    const type = jobType();
    const body = {
      job_type: type,
      cron_expression: null,
      interval_seconds: null,
      scheduled_time: null,
      calendar_rule: null,
      timezone: timezone.value.trim() || "UTC",
      start_time: fromLocalInput(startTime.value),
      end_time: fromLocalInput(endTime.value),
    };
    if (type === "cron") body.cron_expression = cron.value.trim() || null;
    if (type === "interval") body.interval_seconds = intervalSeconds(problems);
    if (type === "date") body.scheduled_time = fromLocalInput(scheduledTime.value);
    if (type === "calendar") body.calendar_rule = calendarRule.value.trim() ? calendarRule.value : null;
    return body;
  }

  function jobBody(problems) {
    const body = {
      name: name.value.trim(),
      description: description.value.trim() || null,
      tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
      ...scheduleBody(problems),
      task_name: taskName.value.trim(),
      task_args: json(taskArgs, "task_args", "array", problems),
      task_kwargs: json(taskKwargs, "task_kwargs", "object", problems),
      is_active: isActive.checked,
      max_retries: wholeNumber(maxRetries, "max_retries", problems),
      retry_delay: wholeNumber(retryDelay, "retry_delay", problems),
      retry_backoff: retryBackoff.checked,
      priority: wholeNumber(priority, "priority", problems),
      misfire_grace_seconds: wholeNumber(misfire, "misfire_grace_seconds", problems),
      concurrency_policy: concurrency.value,
      metadata: json(metadata, "metadata", "object", problems),
    };
    if (body.job_type === "interval" && body.interval_seconds === null) {
      problems.push({ field: "interval_seconds", text: "enter how often the job runs" });
    }
    return body;
  }

  // -- the as-you-type check -------------------------------------------------------------------

  function showTypeFields() {
    const type = jobType();
    for (const [kind, el] of Object.entries(scheduleFields)) el.hidden = kind !== type;
  }

  // `spoken`: more words for screen readers (the live region), shown at the field already.
  function setPreview(statusText, runs = [], zone = "UTC", kind = "info", spoken = "") {
    replace(previewStatus, statusText, spoken ? h("span", { class: "visually-hidden" }, ` ${spoken}`) : null);
    previewStatus.dataset.kind = kind;
    const viewerDiffers = knownZone(zone) !== VIEWER_ZONE;
    replace(
      previewList,
      runs.map((run) =>
        h(
          "li",
          null,
          h("time", { datetime: run }, formatDateTime(run, zone)),
          h("span", { class: "preview__zone" }, ` ${zone}`),
          viewerDiffers ? h("span", { class: "preview__viewer" }, `${formatDateTime(run, VIEWER_ZONE, "time")} your time (${VIEWER_ZONE})`) : null,
        ),
      ),
    );
  }

  function applyProblems(problems, fromChecker) {
    const unplaced = [];
    for (const problem of problems) {
      const target = problem.field === "interval_value" ? "interval_seconds" : problem.field;
      if (target && setError(target, problem.text)) {
        if (fromChecker) checkerErrors.add(target);
      } else {
        unplaced.push(problem.field ? `${problem.field}: ${problem.text}` : problem.text);
      }
    }
    return unplaced;
  }

  async function checkSchedule() {
    checkSeq += 1;
    const mine = checkSeq;
    if (checkController) checkController.abort();
    checkController = new AbortController();
    const signal = checkController.signal;
    for (const key of SCHEDULE_INPUTS) if (checkerErrors.has(key)) clearError(key);
    cronWords.textContent = "";
    const type = jobType();
    const local = [];
    const body = scheduleBody(local);
    intervalWords.textContent = body.interval_seconds ? `${describeInterval(body.interval_seconds)}.` : "";
    if (local.length) {
      applyProblems(local, true);
      setPreview(`${FIELD_LABELS[local[0].field]}: ${local[0].text}.`, [], body.timezone, "error");
      return;
    }
    const own = SCHEDULE_FIELD[type];
    if (body[own] === null || body[own] === undefined) {
      setPreview(`Enter the ${FIELD_LABELS[own].toLowerCase()} to see the next runs.`, [], body.timezone);
      return;
    }
    previewStatus.textContent = "Checking…";
    previewStatus.dataset.kind = "info";
    try {
      if (type === "cron") {
        const answer = await post("/cron/validate", { expression: body.cron_expression, timezone: body.timezone, count: 1 }, { signal });
        if (mine !== checkSeq) return;
        if (!answer.is_valid) {
          setError("cron_expression", answer.error);
          checkerErrors.add("cron_expression");
          setPreview("The cron expression is not valid yet: see the message at the field.", [], body.timezone, "error", answer.error);
          return;
        }
        cronWords.textContent = `${answer.description}.`;
      }
      const answer = await post("/schedules/preview", { ...body, count: PREVIEW_COUNT }, { signal });
      if (mine !== checkSeq) return;
      const runs = answer.next_runs || [];
      const lead = type === "cron" ? `${cronWords.textContent} ` : type === "interval" ? `${intervalWords.textContent} ` : "";
      if (!runs.length) {
        const why = type === "date" ? "that time has passed, so the job would never run" : "the schedule has ended or never fires";
        setPreview(`${lead}No run ahead: ${why}.`, [], body.timezone, "warning");
      }
      else setPreview(`${lead}The next ${runs.length === 1 ? "run" : `${runs.length} runs`}:`, runs, body.timezone, "ok");
    } catch (error) {
      if (error.name === "AbortError" || mine !== checkSeq) return;
      if (error instanceof ApiError && error.status === 422) {
        const problems = error.problems.map((p) => ({ field: p.field, text: p.msg }));
        applyProblems(problems, true);
        const lines = problems.map((p) => `${FIELD_LABELS[p.field] || p.field || "Schedule"}: ${p.text}.`);
        const placed = problems.every((p) => p.field && fieldEls[p.field]);
        if (placed) setPreview("The schedule is not valid yet: see the message at the field.", [], body.timezone, "error", lines.join(" "));
        else setPreview(`The schedule is not valid yet. ${lines.join(" ")}`, [], body.timezone, "error");
      } else {
        setPreview(`The schedule could not be checked: ${error.message}`, [], body.timezone, "error");
      }
    }
  }

  const scheduleChanged = debounce(checkSchedule, CHECK_DELAY_MS);
  for (const el of [cron, intervalValue, scheduledTime, calendarRule, timezone, startTime, endTime]) {
    el.addEventListener("input", scheduleChanged);
  }
  intervalUnit.addEventListener("change", scheduleChanged);
  typeGroup.addEventListener("change", () => {
    showTypeFields();
    clearError("job_type");
    scheduleChanged();
  });
  presets.addEventListener("change", () => {
    if (!presets.value) return;
    cron.value = presets.value;
    presets.value = "";
    cron.focus();
    scheduleChanged.cancel();
    checkSchedule();
  });

  // JSON fields: told as typed, without the API.
  function checkJson(control, fieldName, kind) {
    const problems = [];
    json(control, fieldName, kind, problems);
    clearError(fieldName);
    if (problems.length) setError(fieldName, problems[0].text);
  }
  const jsonFields = [
    [taskArgs, "task_args", "array"],
    [taskKwargs, "task_kwargs", "object"],
    [metadata, "metadata", "object"],
  ];
  for (const [control, fieldName, kind] of jsonFields) {
    control.addEventListener("input", debounce(() => checkJson(control, fieldName, kind), CHECK_DELAY_MS));
  }
  // Other fields: an error from the last submit goes once the field is changed.
  for (const key of ["name", "tags", "description", "task_name", "max_retries", "retry_delay", "priority", "misfire_grace_seconds", "concurrency_policy", "is_active", "retry_backoff"]) {
    const control = controls[key];
    if (control) control.addEventListener("input", () => clearError(key));
  }

  // -- submit ----------------------------------------------------------------------------------

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    scheduleChanged.cancel();
    clearAllErrors();
    const problems = [];
    const body = jobBody(problems);
    if (problems.length) {
      applyProblems(problems, false);
      showSummary(`Fix ${problems.length === 1 ? "this problem" : `these ${problems.length} problems`} first`, problems);
      return;
    }
    submit.disabled = true;
    submit.textContent = editing ? "Saving…" : "Creating…";
    try {
      const saved = editing ? await put(`/jobs/${editing}`, body, { signal: ctx.signal }) : await post("/jobs", body, { signal: ctx.signal });
      announce(editing ? `Job “${saved.name}” saved.` : `Job “${saved.name}” created.`);
      ctx.navigate(`#/jobs/${saved.id}`);
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error instanceof ApiError && error.status === 422) {
        const found = error.problems.map((p) => ({ field: p.field, text: p.msg }));
        applyProblems(found, false);
        showSummary(`The API did not accept the job: ${found.length === 1 ? "1 problem" : `${found.length} problems`}`, found);
      } else {
        showSummary(error instanceof ApiError ? error.title : "The job could not be saved", detailLines(error).map((text) => ({ field: null, text })));
      }
    } finally {
      submit.disabled = false;
      submit.textContent = editing ? "Save changes" : "Create job";
    }
  });

  // -- start ---------------------------------------------------------------------------------

  function fill(j) {
    name.value = j.name;
    description.value = j.description || "";
    tags.value = (j.tags || []).join(", ");
    setJobType(j.job_type);
    cron.value = j.cron_expression || "";
    if (j.interval_seconds) {
      const [, unit] = [...UNITS].reverse().find(([, n]) => j.interval_seconds % n === 0) || UNITS[0];
      intervalUnit.value = String(unit);
      intervalValue.value = String(j.interval_seconds / unit);
    }
    scheduledTime.value = toLocalInput(j.scheduled_time, j.timezone);
    calendarRule.value = j.calendar_rule || "";
    timezone.value = j.timezone;
    startTime.value = toLocalInput(j.start_time, j.timezone);
    endTime.value = toLocalInput(j.end_time, j.timezone);
    taskName.value = j.task_name;
    taskArgs.value = JSON.stringify(j.task_args || []);
    taskKwargs.value = JSON.stringify(j.task_kwargs || {}, null, 2);
    isActive.checked = j.is_active;
    maxRetries.value = String(j.max_retries);
    retryDelay.value = String(j.retry_delay);
    retryBackoff.checked = j.retry_backoff;
    priority.value = String(j.priority);
    misfire.value = String(j.misfire_grace_seconds);
    concurrency.value = j.concurrency_policy;
    metadata.value = JSON.stringify(j.metadata || {}, null, 2);
  }

  (async () => {
    get("/cron/presets", { signal: ctx.signal })
      .then((found) => {
        for (const [key, preset] of Object.entries(found || {})) {
          presets.append(h("option", { value: preset.expression, dataset: { preset: key } }, `${preset.description} (${preset.expression})`));
        }
      })
      .catch(() => {});
    if (editing) {
      try {
        job = await get(`/jobs/${editing}`, { signal: ctx.signal });
      } catch (error) {
        if (error.name === "AbortError") return;
        if (loading) loading.remove();
        replace(loadError, notice("error", error instanceof ApiError && error.status === 404 ? `There is no job #${editing}` : "The job could not be loaded", detailLines(error)));
        return;
      }
      if (loading) loading.remove();
      title.textContent = `Edit “${job.name}”`;
      ctx.setTitle(`Edit ${job.name}`);
      fill(job);
      form.hidden = false;
    } else {
      setJobType("cron");
    }
    showTypeFields();
    checkSchedule();
  })();

  return () => {
    scheduleChanged.cancel();
    if (checkController) checkController.abort();
  };
}
