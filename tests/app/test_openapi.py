"""Issue 11: the API's OpenAPI 3.1 document and its documentation page.

The document is made from the route table and the models (chalicelib.api.openapi): these tests
hold it to the routes both ways, to the OpenAPI 3.1 schema, and to what the API really answers.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

import app as app_module
from chalicelib.api import docs, examples, openapi
from chalicelib.models import NON_NULLABLE

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.build(app_module.app.routes)


def route_pairs() -> set[tuple[str, str]]:
    """The API's routes: under /v1 (the dashboard's pages, /ui, are not part of it)."""
    return {
        (m, p)
        for p, methods in app_module.app.routes.items()
        if p.startswith(openapi.ROUTE_PREFIX + "/")
        for m in methods
    }


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), openapi.ROUTE_PREFIX + path): op
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def deref(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    """A JSON Schema 2020-12 validator (OpenAPI 3.1's dialect) that resolves the document's
    `#/components/...` references."""
    root = {**schema, "components": document["components"]}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


def answer_schema(document: dict[str, Any], method: str, path: str, status: int) -> Any:
    op = operations(document)[(method, path)]
    response = deref(document, op["responses"][str(status)])
    return response["content"]["application/json"]["schema"]


def check(document: dict[str, Any], method: str, path: str, status: int, body: Any) -> None:
    validator(document, answer_schema(document, method, path, status)).validate(body)


# -- the document is OpenAPI 3.1 ---------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_has_an_operation_and_every_operation_a_route(document):
    assert set(operations(document)) == route_pairs()


def test_every_route_is_described_and_every_description_has_a_route():
    described = set(openapi.OPERATIONS)
    assert route_pairs() - described == set(), "routes without an entry in OPERATIONS"
    assert described - route_pairs() == set(), "entries in OPERATIONS without a route"


def test_every_operation_has_a_summary_an_answer_and_its_errors(document):
    for (method, path), op in operations(document).items():
        assert op["summary"], (method, path)
        assert op["operationId"] == app_module.app.routes[path][method].view_name
        codes = set(op["responses"])
        assert any(c.startswith("2") for c in codes), (method, path)
        assert "500" in codes, (method, path)
        if op["security"]:
            assert {"401", "403", "429", "503"} <= codes, (method, path)
        if "requestBody" in op:
            assert {"400", "413", "415", "422"} <= codes, (method, path)
        if "{job_id}" in path:
            assert {"404", "422"} <= codes, (method, path)


def test_a_route_asks_for_the_scope_its_api_decorator_checks(document):
    for (method, path), op in operations(document).items():
        route = app_module.app.routes[path][method]
        scope = route.view_function.nexus_scope
        if scope is None:
            assert op["security"] == [], (method, path)
            assert route.authorizer is None, (method, path)
        else:
            assert op["security"] == [{openapi.SECURITY_SCHEME: [scope]}], (method, path)
            assert route.authorizer is not None, (method, path)
    assert document["security"] == [{openapi.SECURITY_SCHEME: []}]
    scheme = document["components"]["securitySchemes"][openapi.SECURITY_SCHEME]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"


def test_the_open_operations_are_the_presets_the_document_and_the_docs(document):
    open_ops = {key for key, op in operations(document).items() if op["security"] == []}
    assert open_ops == {
        ("GET", "/v1/cron/presets"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/docs"),
        ("GET", "/v1/docs/{asset}"),
    }


def test_the_paths_are_reached_through_the_server_of_the_api_stage(document):
    assert document["servers"] == [{"url": "/api/v1", "description": "This API (the stage `api`)."}]
    assert "/jobs/{job_id}" in document["paths"]
    assert not any(path.startswith("/v1") for path in document["paths"])


# -- schemas ---------------------------------------------------------------------------------


def test_job_create_requires_what_the_contract_requires(document):
    schema = document["components"]["schemas"]["JobCreate"]
    assert set(schema["required"]) == {"name", "job_type", "task_name"}
    assert schema["additionalProperties"] is False
    op = operations(document)[("POST", "/v1/jobs")]
    body = op["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/JobCreate"}
    assert body["example"] == examples.JOB_CREATE


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"dates": ["2026-12-25"]}, True),
        ({"ics": "BEGIN:VCALENDAR"}, True),
        ({"dates": ["2026-12-25"], "ics": None}, True),  # null reads as not sent
        ({"dates": None, "ics": "BEGIN:VCALENDAR"}, True),
        ({"dates": ["2026-12-25"], "ics": "BEGIN:VCALENDAR"}, False),
        ({}, False),
        ({"dates": None, "ics": None}, False),
        ({"dates": ["2026-12-25"], "colour": "red"}, False),
    ],
)
def test_a_new_calendar_has_its_days_as_dates_or_as_ics_exactly_one(document, body, accepted):
    """The document says what the API does (tests/app/test_calendars_api.py), in a shape a
    generator can make data for (schemathesis could not for a `oneOf` of `required` lists)."""
    schema = {"$ref": "#/components/schemas/CalendarCreate"}
    full = {"name": "us-holidays", "timezone": "US/Eastern", **body}
    assert validator(document, schema).is_valid(full) is accepted


def test_put_takes_a_partial_job_with_null_only_where_a_field_may_be_empty(document):
    schema = document["components"]["schemas"]["JobUpdate"]
    assert "required" not in schema
    create = document["components"]["schemas"]["JobCreate"]
    assert set(schema["properties"]) == set(create["properties"])
    nullable = {k for k, v in schema["properties"].items() if "'null'" in str(v)}
    assert nullable == set(create["properties"]) - NON_NULLABLE


def test_a_422_has_the_contracts_shape(document):
    answer = deref(document, operations(document)[("POST", "/v1/jobs")]["responses"]["422"])
    schema = answer["content"]["application/json"]["schema"]
    v = validator(document, schema)
    v.validate(examples.VALIDATION_ERROR)
    assert not v.is_valid({"detail": "text"})
    problem = document["components"]["schemas"]["FieldProblem"]
    assert set(problem["required"]) == {"loc", "msg", "type"}


def test_errors_name_the_headers_that_come_with_them(document):
    responses = document["components"]["responses"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Retry-After" in responses["429"]["headers"]
    assert "RateLimit-Remaining" in responses["429"]["headers"]
    lists = operations(document)[("GET", "/v1/jobs")]["responses"]["200"]
    assert "X-Next-Cursor" in lists["headers"]


def test_query_parameters_come_from_the_query_models(document):
    params = {p["name"]: p for p in operations(document)[("GET", "/v1/jobs")]["parameters"]}
    assert set(params) == {"skip", "limit", "cursor", "is_active", "job_type", "tags"}
    assert params["limit"]["schema"]["maximum"] == 1000
    assert params["job_type"]["schema"]["enum"] == ["cron", "interval", "date", "calendar"]
    assert params["is_active"]["schema"]["type"] == "boolean"


def test_every_example_is_valid_against_its_schema(document):
    for op in operations(document).values():
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body and "example" in body:
            validator(document, body["schema"]).validate(body["example"])
        for response in op["responses"].values():
            media = deref(document, response).get("content", {}).get("application/json")
            if media and "example" in media:
                validator(document, media["schema"]).validate(media["example"])


# -- the schemas are what the API answers -----------------------------------------------------


def test_real_answers_match_their_schemas(api, contract_job):
    doc = openapi.build(app_module.app.routes)
    created = api.post("/v1/jobs", contract_job)
    assert created.status_code == 201
    check(doc, "POST", "/v1/jobs", 201, created.json)
    job_id = created.json["id"]
    check(doc, "GET", "/v1/jobs", 200, api.get("/v1/jobs").json)
    check(doc, "GET", "/v1/jobs/{job_id}", 200, api.get(f"/v1/jobs/{job_id}").json)
    updated = api.put(f"/v1/jobs/{job_id}", examples.JOB_UPDATE)
    check(doc, "PUT", "/v1/jobs/{job_id}", 200, updated.json)
    check(doc, "POST", "/v1/jobs/{job_id}/resume", 200, api.post(f"/v1/jobs/{job_id}/resume").json)
    check(doc, "POST", "/v1/jobs/{job_id}/pause", 200, api.post(f"/v1/jobs/{job_id}/pause").json)
    run = api.post(f"/v1/jobs/{job_id}/execute", examples.EXECUTE)
    check(doc, "POST", "/v1/jobs/{job_id}/execute", 200, run.json)
    history = api.get(f"/v1/jobs/{job_id}/executions").json
    assert history
    check(doc, "GET", "/v1/jobs/{job_id}/executions", 200, history)
    check(doc, "GET", "/v1/jobs/{job_id}/audit", 200, api.get(f"/v1/jobs/{job_id}/audit").json)
    check(doc, "GET", "/v1/jobs/stats/overview", 200, api.get("/v1/jobs/stats/overview").json)
    cron = api.post("/v1/cron/validate", examples.CRON_VALIDATE).json
    check(doc, "POST", "/v1/cron/validate", 200, cron)
    bad = api.post("/v1/cron/validate", {"expression": "61 * * * *"}).json
    check(doc, "POST", "/v1/cron/validate", 200, bad)
    check(doc, "GET", "/v1/cron/presets", 200, api.get("/v1/cron/presets").json)
    preview = api.post("/v1/schedules/preview", examples.PREVIEW).json
    check(doc, "POST", "/v1/schedules/preview", 200, preview)
    key = api.post("/v1/keys", examples.KEY_CREATE)
    check(doc, "POST", "/v1/keys", 201, key.json)
    check(doc, "GET", "/v1/keys", 200, api.get("/v1/keys").json)
    assert api.delete(f"/v1/keys/{key.json['id']}").status_code == 204
    check(doc, "GET", "/v1/audit", 200, api.get("/v1/audit").json)
    check(doc, "GET", "/v1/jobs/{job_id}", 404, api.get("/v1/jobs/999").json)
    check(doc, "POST", "/v1/jobs", 422, api.post("/v1/jobs", {"name": "x"}).json)
    check(doc, "POST", "/v1/jobs", 400, api.post("/v1/jobs", raw="{").json)
    check(doc, "GET", "/v1/jobs", 401, api.as_key("not-a-key").get("/v1/jobs").json)


# -- served without a key -----------------------------------------------------------------------


def test_the_document_is_served_without_a_key(api):
    response = api.as_key(None).get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json == openapi.build(app_module.app.routes)


def fetch(api: Any, path: str) -> Any:
    """A GET without a key, its body left as it came (not all of them are JSON)."""
    return api.http.get(path)


def text(response: Any) -> str:
    body = response.body
    return body.decode() if isinstance(body, bytes) else str(body)


def test_the_docs_page_and_its_files_load_without_a_key_and_from_nowhere_else(api):
    page = fetch(api, "/v1/docs")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = text(page)
    linked = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert linked and all(link.startswith("docs/") for link in linked), linked
    for link in linked:
        name = link.removeprefix("docs/")
        asset = fetch(api, f"/v1/docs/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["Content-Type"] == docs.ASSETS[name].content_type
        assert len(asset.body) > 100
    assert 'url: "openapi.json"' in text(fetch(api, "/v1/docs/nexus-docs.js"))


@pytest.mark.parametrize(
    "name", ["LICENSE", "..%2Fdocs.py", "swagger-ui.css.map", "index.html", "%2e%2e", "README.md"]
)
def test_only_the_docs_own_files_are_served(api, name):
    response = api.as_key(None).get(f"/v1/docs/{name}")
    assert response.status_code == 404
    assert set(response.json) == {"detail"}


def test_swagger_ui_is_a_version_that_renders_openapi_3_1():
    bundle = docs.read("swagger-ui-bundle.js")
    assert "OpenAPI 3.1" in bundle or "3.1.0" in bundle
    readme = (docs.STATIC / "swagger-ui" / "README.md").read_text()
    major = int(re.search(r"Swagger UI (\d+)\.", readme).group(1))  # type: ignore[union-attr]
    assert major >= 5
