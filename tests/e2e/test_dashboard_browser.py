"""The dashboard (/api/ui) in a real browser: Debian's headless Chromium, driven by selenium,
against the make-run server of conftest.py.

Chromium and its driver are the system's (`apt-get install chromium chromium-driver`), passed
to selenium explicitly, so that selenium never downloads a browser. Without them these tests
fail, saying so: they do not skip.

Every wait is an explicit WebDriverWait on what a person would see; no test sleeps, and none
asserts on timing. Screenshots of the main pages go to $NEXUS_SCREENSHOT_DIR (default
.local/screenshots, relative to the repository) at 1280x800, and the jobs page at 390 px.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import E2E_KEY, ROOT, request

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get install chromium chromium-driver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# How long a wait may take before the test fails: generous, for a loaded CI machine.
WAIT_SECONDS = 30
DESKTOP = (1280, 800)
PHONE = (390, 844)


def screenshot_dir() -> Path:
    where = Path(os.environ.get("NEXUS_SCREENSHOT_DIR", ".local/screenshots"))
    return where if where.is_absolute() else ROOT / where


# -- the browser -------------------------------------------------------------------------------


def set_viewport(driver: Chrome, size: tuple[int, int], *, mobile: bool = False) -> None:
    """The page's viewport, exactly (a window size would include the browser's own frame)."""
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Chrome]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"the dashboard's browser tests need Debian's Chromium and its driver "
            f"({', '.join(missing)} not found): {INSTALL}",
            pytrace=False,
        )
    profile = tempfile.mkdtemp(prefix="nexus-chromium-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    except WebDriverException as exc:
        shutil.rmtree(profile, ignore_errors=True)
        pytest.fail(f"Chromium did not start ({exc.msg}); is it installed? {INSTALL}")
    set_viewport(driver, DESKTOP)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# -- helpers ----------------------------------------------------------------------------------


def until[T](driver: Chrome, condition: Callable[[Chrome], T | None], what: str) -> T:
    """Wait until `condition` is truthy; fail saying `what` was awaited. Live updates replace
    rows while a test reads them: an element gone stale is read again at the next poll."""
    try:
        found = WebDriverWait(
            driver,
            WAIT_SECONDS,
            poll_frequency=0.1,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(condition)
    except TimeoutException:
        raise AssertionError(f"not seen within {WAIT_SECONDS} s: {what}") from None
    assert found is not None  # until() returns only a truthy value
    return found


def shown(driver: Chrome, css: str) -> WebElement:
    def find(d: Chrome) -> WebElement | None:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if element.is_displayed():
                return element
        return None

    return until(driver, find, f"an element {css!r} on screen")


def text_of(driver: Chrome, css: str, expected: str) -> WebElement:
    def find(d: Chrome) -> WebElement | None:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if expected in element.text:
                return element
        return None

    return until(driver, find, f"{css!r} reading {expected!r}")


def click(driver: Chrome, element: WebElement) -> None:
    # Centred first: the sticky top bar must not be over what is clicked.
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def press(driver: Chrome, css: str) -> None:
    """Click the first element on screen matching `css`, found again if a live update
    replaced it between the finding and the clicking."""

    def attempt(d: Chrome) -> bool:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if element.is_displayed():
                click(d, element)
                return True
        return False

    until(driver, attempt, f"{css!r} to click")


def fill(element: WebElement, text: str) -> None:
    """Replace what a field holds, as typing does (WebElement.clear fires no input event)."""
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE)
    if text:
        element.send_keys(text)


def console_errors(driver: Chrome, allowed: tuple[str, ...] = ()) -> list[str]:
    """The browser's SEVERE log entries since the last call (errors, CSP refusals, failed
    loads), except those containing one of `allowed`."""
    entries = driver.get_log("browser")
    return [
        e["message"]
        for e in entries
        if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)
    ]


def assert_clean_console(driver: Chrome, page: str, allowed: tuple[str, ...] = ()) -> None:
    errors = console_errors(driver, allowed)
    assert not errors, f"console errors on the {page}: {errors}"


def save(driver: Chrome, name: str) -> None:
    where = screenshot_dir()
    where.mkdir(parents=True, exist_ok=True)
    # Nothing mid-animation or focus-ringed by accident: the page as a person sees it.
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    assert driver.save_screenshot(str(where / f"{name}.png")), name


def ui(server: int) -> str:
    return f"http://127.0.0.1:{server}/api/ui"


def sign_in(driver: Chrome, server: int, route: str = "#/jobs") -> None:
    """A fresh page, signed in with the admin key through the sign-in form."""
    driver.get(ui(server) + route)
    driver.execute_script("window.sessionStorage.clear()")
    driver.refresh()
    fill(shown(driver, "#api-key"), E2E_KEY)
    shown(driver, "#api-key").send_keys(Keys.ENTER)
    shown(driver, "#nav")


def wait_live(driver: Chrome) -> None:
    until(
        driver,
        lambda d: (
            d.execute_script("return document.getElementById('live-state').dataset.state") == "live"
        ),
        "the live indicator saying Live (the WebSocket of GET /v1/realtime, subscribed)",
    )


def api(server: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    try:
        return request(conn, method, f"/api/v1{path}", body)
    finally:
        conn.close()


def make_job(server: int, name: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "job_type": "cron",
        "cron_expression": "0 9 * * 1-5",
        "timezone": "Europe/Paris",
        "task_name": "nexus.echo",
        "tags": ["browser"],
        **fields,
    }
    status, job = api(server, "POST", "/jobs", body)
    assert status == 201, job
    return dict(job)


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


# -- the tests ------------------------------------------------------------------------------------


def test_sign_in_refuses_a_wrong_key_and_then_signs_in(browser: Chrome, server: int) -> None:
    driver = browser
    driver.get(ui(server))
    driver.execute_script("window.sessionStorage.clear()")
    driver.refresh()
    key_field = shown(driver, "#api-key")
    assert driver.find_element(By.CSS_SELECTOR, "label[for='api-key']").text == "API key"
    assert_clean_console(driver, "sign-in page")
    save(driver, "sign-in")

    fill(key_field, "nxs_aaaaaaaaaaaa_not-a-real-key")
    key_field.send_keys(Keys.ENTER)
    error = text_of(driver, ".signin .notice--error", "not accepted")
    assert error.get_attribute("role") == "alert"
    assert key_field.get_attribute("aria-invalid") == "true"
    # The refusal's 401 is the only error the browser may log here.
    assert_clean_console(driver, "sign-in page", allowed=("status of 401",))

    fill(key_field, E2E_KEY)
    key_field.send_keys(Keys.ENTER)
    shown(driver, "#jobs-table, .empty")
    assert driver.execute_script("return sessionStorage.getItem('nexus.apiKey')") == E2E_KEY
    assert shown(driver, "#nav-keys").text == "Keys"  # an admin key sees the keys page
    assert_clean_console(driver, "jobs page")


def test_create_a_job_in_the_form_and_watch_it_run_live_then_pause_it(
    browser: Chrome, server: int
) -> None:
    driver = browser
    sign_in(driver, server)
    name = unique("Browser heartbeat")

    press(driver, "#nav a[href='#/new']")
    fill(shown(driver, "#f-name"), name)
    fill(driver.find_element(By.ID, "f-tags"), "browser, heartbeat")
    click(driver, driver.find_element(By.ID, "f-type-interval"))
    fill(shown(driver, "#f-interval_seconds"), "2")
    # Checked as typed: the interval in words and its next runs, before anything is saved.
    text_of(driver, "#preview-status", "Every 2 seconds")
    until(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#preview-runs li")) == 5,
        "five next runs previewed",
    )
    fill(driver.find_element(By.ID, "f-task_name"), "nexus.echo")
    fill(driver.find_element(By.ID, "f-task_kwargs"), '{"greeting": "hello"}')
    assert_clean_console(driver, "job form")
    click(driver, driver.find_element(By.ID, "submit-job"))

    until(driver, lambda d: re.search(r"#/jobs/\d+$", d.current_url), "the new job's page")
    job_id = int(driver.current_url.rsplit("/", 1)[1])
    text_of(driver, "h1.page-title", name)
    text_of(driver, "#schedule-words", "Every 2 seconds")

    # In the jobs table, with its status and next run.
    press(driver, "#nav a[href='#/jobs']")
    text_of(driver, f"#jobs-table tr[data-job-id='{job_id}'] th", name)
    shown(driver, f"#jobs-table tr[data-job-id='{job_id}'] [data-label='Status'] .badge")
    fill(shown(driver, "input[type='search']"), name)
    until(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jobs-table tbody tr")) == 1,
        "the search leaving only the new job",
    )
    fill(shown(driver, "input[type='search']"), "")
    until(driver, lambda d: "q=" not in d.current_url, "the search cleared")
    shown(driver, f"#jobs-table tr[data-job-id='{job_id}']")
    # A job made elsewhere appears at the top of the table, live.
    wait_live(driver)
    elsewhere = make_job(server, unique("Made elsewhere"))
    text_of(driver, f"#jobs-table tr[data-job-id='{elsewhere['id']}']", "Made elsewhere")
    api(server, "DELETE", f"/jobs/{elsewhere['id']}")
    until(
        driver,
        lambda d: not d.find_elements(By.CSS_SELECTOR, f"tr[data-job-id='{elsewhere['id']}']"),
        "the deleted job gone from the table, live",
    )
    assert_clean_console(driver, "jobs page")
    save(driver, "jobs")

    # Its page: a run appears in the history while the page stays loaded.
    wait_live(driver)
    press(driver, f"#jobs-table tr[data-job-id='{job_id}'] a")
    text_of(driver, "h1.page-title", name)
    shown(driver, "#upcoming")
    until(
        driver,
        lambda d: d.execute_script("return document.querySelector('#history-title') !== null"),
        "the run history",
    )
    driver.execute_script("window.__notReloaded = true")
    before = set(
        driver.execute_script(
            "return [...document.querySelectorAll('#history tbody tr')]"
            ".map(r => r.dataset.executionId)"
        )
    )
    until(
        driver,
        lambda d: d.execute_script(
            "const seen = new Set(arguments[0]);"
            "return [...document.querySelectorAll('#history tbody tr[data-status=completed]')]"
            ".some(r => !seen.has(r.dataset.executionId))",
            sorted(before),
        ),
        "a new completed run in the history, live",
    )
    assert driver.execute_script("return window.__notReloaded === true"), "the page reloaded"
    completed = "#history tbody tr[data-status=completed]"
    text_of(driver, f"{completed} [data-label='Trigger']", "Scheduled")
    text_of(driver, f"{completed} [data-label='Result']", "hello")
    assert_clean_console(driver, "job page")
    save(driver, "job")

    # Paused: the page says so, and so does the table.
    press(driver, "#pause-resume")
    text_of(driver, "#job-status", "Paused")
    text_of(driver, "#pause-resume", "Resume")
    press(driver, "#nav a[href='#/jobs']")
    text_of(driver, f"#jobs-table tr[data-job-id='{job_id}'] [data-label='Status']", "Paused")
    assert_clean_console(driver, "jobs page")


def test_an_invalid_cron_expression_is_explained_before_submitting(
    browser: Chrome, server: int
) -> None:
    driver = browser
    sign_in(driver, server, "#/new")
    shown(driver, "#f-name")
    fill(driver.find_element(By.ID, "f-name"), unique("Not yet valid"))
    assert driver.find_element(By.ID, "f-type-cron").is_selected()
    cron = shown(driver, "#f-cron_expression")
    fill(cron, "*/5 * * *")

    error = text_of(driver, "#err-cron_expression", "5 or 6 fields")
    assert error.is_displayed()
    assert cron.get_attribute("aria-invalid") == "true"
    assert "err-cron_expression" in (cron.get_attribute("aria-describedby") or "")
    text_of(driver, "#preview-status", "not valid")
    assert driver.current_url.endswith("#/new"), "nothing was submitted"
    assert_clean_console(driver, "job form")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cron)
    save(driver, "new-job-invalid-cron")

    # Corrected, the error goes and the schedule is read back in words.
    fill(cron, "*/5 * * * *")
    text_of(driver, "#cron-words", "Every 5 minutes")
    until(driver, lambda d: not d.find_element(By.ID, "err-cron_expression").is_displayed(), "ok")
    assert cron.get_attribute("aria-invalid") is None


def test_submitting_shows_the_apis_own_error_at_its_field(browser: Chrome, server: int) -> None:
    driver = browser
    sign_in(driver, server, "#/new")
    fill(shown(driver, "#f-name"), unique("Unknown task"))
    fill(shown(driver, "#f-cron_expression"), "0 9 * * 1-5")
    text_of(driver, "#cron-words", "09:00")
    fill(driver.find_element(By.ID, "f-task_name"), "no.such.task")
    click(driver, driver.find_element(By.ID, "submit-job"))
    summary = shown(driver, "#form-errors")
    assert "not registered" in summary.text
    text_of(driver, "#err-task_name", "registered tasks: ")
    assert driver.current_url.endswith("#/new")
    assert_clean_console(driver, "job form", allowed=("status of 422",))


def test_run_now_edit_then_delete_after_confirming(browser: Chrome, server: int) -> None:
    driver = browser
    job = make_job(server, unique("Delete me"))
    sign_in(driver, server, f"#/jobs/{job['id']}")
    text_of(driver, "h1.page-title", job["name"])
    text_of(driver, "#schedule-words", "09:00")
    # The next runs, in the job's zone (Europe/Paris) and the viewer's.
    until(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#upcoming tbody tr")) == 5,
        "five next runs",
    )
    assert "Europe/Paris" in (shown(driver, "#upcoming thead").get_attribute("textContent") or "")

    # Edit: the form holds the job; a new schedule is checked, saved and read back.
    press(driver, "#edit-job")
    cron = shown(driver, "#f-cron_expression")
    assert cron.get_attribute("value") == "0 9 * * 1-5"
    assert shown(driver, "#f-name").get_attribute("value") == job["name"]
    fill(cron, "30 8 * * *")
    text_of(driver, "#cron-words", "08:30")
    press(driver, "#submit-job")
    until(driver, lambda d: d.current_url.endswith(f"#/jobs/{job['id']}"), "the job's page")
    text_of(driver, "#schedule-words", "08:30")
    assert api(server, "GET", f"/jobs/{job['id']}")[1]["cron_expression"] == "30 8 * * *"

    wait_live(driver)
    press(driver, "#run-now")
    text_of(driver, "#history tbody tr[data-status=completed] [data-label='Trigger']", "Manual")

    delete = shown(driver, "#delete-job")
    click(driver, delete)
    dialog = shown(driver, "dialog[open]")
    assert "Delete" in dialog.text
    assert driver.switch_to.active_element.text == "Cancel", "focus starts on the safe choice"
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    until(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog[open]"), "closed")
    assert driver.switch_to.active_element.get_attribute("id") == "delete-job"
    assert api(server, "GET", f"/jobs/{job['id']}")[0] == 200

    click(driver, delete)
    press(driver, "dialog[open] .btn--danger")
    until(driver, lambda d: d.current_url.endswith("#/jobs"), "back on the jobs page")
    assert api(server, "GET", f"/jobs/{job['id']}")[0] == 404
    shown(driver, "#jobs-table, .empty")
    assert not driver.find_elements(By.CSS_SELECTOR, f"tr[data-job-id='{job['id']}']")
    assert_clean_console(driver, "job page")


def test_stats_page_draws_the_last_24_hours(browser: Chrome, server: int) -> None:
    driver = browser
    sign_in(driver, server, "#/stats")
    shown(driver, "svg.chart")
    # A failing job: its runs reach the counters and the chart live, without a reload.
    wait_live(driver)
    driver.execute_script("window.__notReloaded = true")
    failing = make_job(
        server,
        unique("Always fails"),
        job_type="interval",
        cron_expression=None,
        interval_seconds=1,
        task_name="nexus.fail",
    )
    try:
        until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, "svg.chart .chart__failed"),
            "a failed run in the chart, live",
        )
    finally:
        api(server, "POST", f"/jobs/{failing['id']}/pause")
    assert driver.execute_script("return window.__notReloaded === true"), "the page reloaded"
    failed = shown(driver, ".metric--failed .metric__value")
    assert int(failed.text) >= 1
    chart = shown(driver, "svg.chart")
    assert chart.get_attribute("role") == "img"
    metrics = shown(driver, ".metrics")
    assert "Jobs" in metrics.text and "Failed" in metrics.text
    # 24 hours, each with its numbers in words for screen readers and in the table.
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart .chart__bar")) == 24
    rows = driver.find_elements(By.CSS_SELECTOR, ".chart-data tbody tr")
    assert len(rows) == 24
    assert_clean_console(driver, "stats page")
    save(driver, "stats")


def test_keys_page_creates_a_key_shown_once_and_revokes_it(browser: Chrome, server: int) -> None:
    driver = browser
    sign_in(driver, server)
    press(driver, "#nav-keys a")
    name = unique("Browser key")
    fill(shown(driver, "#key-name"), name)
    scope = driver.find_element(By.XPATH, "//label[.//code[text()='jobs:write']]")
    click(driver, scope)
    click(driver, driver.find_element(By.CSS_SELECTOR, ".key-form button[type=submit]"))

    secret = shown(driver, "#new-key-value")
    key = secret.get_attribute("value") or ""
    assert key.startswith("nxs_")
    click(driver, driver.find_element(By.XPATH, "//button[text()='Done']"))
    until(driver, lambda d: not d.find_elements(By.ID, "new-key-value"), "the key hidden again")
    assert key not in driver.page_source, "a key is shown once"

    key_id = key.split("_")[1]
    row = text_of(driver, f"#keys-table tbody tr[data-key-id='{key_id}']", name)
    assert "jobs:write" in row.text
    press(driver, f"#keys-table tbody tr[data-key-id='{key_id}'] button")
    shown(driver, "dialog[open]")
    press(driver, "dialog[open] .btn--danger")
    text_of(driver, f"#keys-table tbody tr[data-key-id='{key_id}']", "Revoked")
    # The revoked key is refused by the API.
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    try:
        status, body = request(conn, "GET", "/api/v1/jobs", key=key)
    finally:
        conn.close()
    assert status == 401, body
    assert_clean_console(driver, "keys page")
    driver.execute_script("window.scrollTo(0, 0)")
    save(driver, "keys")


def test_sign_out_forgets_the_key(browser: Chrome, server: int) -> None:
    driver = browser
    sign_in(driver, server)
    press(driver, "#sign-out")
    shown(driver, "#api-key")
    assert driver.execute_script("return sessionStorage.getItem('nexus.apiKey')") is None
    assert not driver.find_element(By.ID, "nav").is_displayed()
    driver.refresh()
    shown(driver, "#api-key")
    assert_clean_console(driver, "sign-in page")


def test_jobs_page_has_no_horizontal_overflow_at_390px(browser: Chrome, server: int) -> None:
    driver = browser
    make_job(
        server,
        unique("A job with a rather long name that has to wrap on a phone"),
        tags=["phone", "narrow-screens", "layout"],
    )
    make_job(
        server,
        unique("Every ten seconds"),
        job_type="interval",
        cron_expression=None,
        interval_seconds=10,
        is_active=False,
    )
    sign_in(driver, server)
    set_viewport(driver, PHONE, mobile=True)
    try:
        driver.refresh()
        shown(driver, "#jobs-table tbody tr")
        sizes = driver.execute_script(
            "return {view: document.documentElement.clientWidth,"
            " doc: document.documentElement.scrollWidth, body: document.body.scrollWidth}"
        )
        assert sizes["view"] == PHONE[0], sizes
        assert sizes["doc"] <= sizes["view"], f"the page scrolls sideways: {json.dumps(sizes)}"
        assert sizes["body"] <= sizes["view"], f"the body overflows: {json.dumps(sizes)}"
        assert_clean_console(driver, "jobs page at 390 px")
        save(driver, "jobs-390")
    finally:
        set_viewport(driver, DESKTOP)


def test_jobs_table_filters_and_pages(browser: Chrome, server: int) -> None:
    driver = browser
    tag = f"batch-{uuid.uuid4().hex[:6]}"
    for i in range(22):
        make_job(server, f"Report {i:02d}", tags=[tag])
    for i in range(4):
        make_job(
            server,
            f"Poll {i}",
            tags=[tag],
            job_type="interval",
            cron_expression=None,
            interval_seconds=3600,
            is_active=i % 2 == 0,
        )
    sign_in(driver, server)
    rows = "#jobs-table tbody tr"

    def count(n: int) -> Callable[[Chrome], bool]:
        return lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == n

    fill(shown(driver, "label[for] + input[placeholder='report, daily']"), tag)
    until(driver, lambda d: f"tags={tag}" in d.current_url, "the filter kept in the address")
    text_of(driver, ".table-status", f"25 jobs on this page (tags {tag})")
    until(driver, count(25), "a first page of 25 jobs with the tag")
    press(driver, ".pager button:last-of-type")
    until(driver, count(1), "the second page: the one job left")
    text_of(driver, ".pager__label", "Page 2")
    press(driver, ".pager button:first-of-type")
    until(driver, count(25), "the first page again")

    type_select = driver.find_element(By.XPATH, "//label[text()='Type']/following-sibling::select")
    type_select.send_keys("Interval")
    until(driver, count(4), "the four interval jobs")
    status_select = driver.find_element(
        By.XPATH, "//label[text()='Status']/following-sibling::select"
    )
    status_select.send_keys("Paused")
    until(driver, count(2), "the two paused interval jobs")
    until(
        driver,
        lambda d: all(
            "Paused" in cell.text
            for cell in d.find_elements(By.CSS_SELECTOR, f"{rows} [data-label='Status']")
        ),
        "only paused jobs listed",
    )

    fill(shown(driver, "input[type='search']"), "poll 1")
    until(driver, count(1), "the name search (case-insensitive)")
    assert "Poll 1" in driver.find_element(By.CSS_SELECTOR, rows).text
    click(driver, driver.find_element(By.XPATH, "//button[text()='Clear filters']"))
    until(driver, lambda d: "tags=" not in d.current_url, "the filters cleared")
    assert_clean_console(driver, "jobs page")
