"""The breaking-change check: the real document against the released one, and each kind of break."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_federation.cli import federation_cli
from flask_federation.contract import check_contract, find_breaks, load_document, parse_allow_list
from scripts.render_openapi import render_default_document

ROOT = Path(__file__).resolve().parent.parent
RELEASED = ROOT / "docs" / "api" / "openapi.released.json"
CHANGELOG = ROOT / "CHANGELOG.md"


def test_generated_document_keeps_released_contract() -> None:
    report = check_contract(load_document(RELEASED), json.loads(render_default_document()), CHANGELOG.read_text(encoding="utf-8"))
    assert report.ok, "\n" + report.render()


def _base() -> dict[str, Any]:
    """Return a small document with a shared schema, an envelope, parameters and a request body."""
    thing = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "id"],
        "properties": {
            "id": {"type": "string", "readOnly": True},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "size": {"type": "integer", "minimum": 0, "maximum": 100},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
            "note": {"type": ["string", "null"]},
            "parent": {"$ref": "#/components/schemas/Thing"},
        },
    }
    envelope = {
        "type": "object",
        "required": ["ok", "data"],
        "properties": {
            "ok": {"type": "boolean", "const": True},
            "data": {
                "type": "object",
                "required": ["items", "next_cursor"],
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Thing"}},
                    "next_cursor": {"type": ["string", "null"]},
                },
            },
        },
    }
    json_thing = {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "components": {"schemas": {"Thing": thing}},
        "paths": {
            "/things": {
                "get": {
                    "parameters": [
                        {"in": "query", "name": "kind", "schema": {"type": "string", "enum": ["a", "b"]}},
                        {"in": "query", "name": "limit", "schema": {"type": "integer"}},
                        {"in": "header", "name": "X-Trace", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "headers": {"X-Request-ID": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": envelope}},
                        },
                        "401": {"description": "no"},
                    },
                },
                "post": {
                    "requestBody": {"required": True, "content": copy.deepcopy(json_thing)},
                    "responses": {"201": {"description": "made", "content": copy.deepcopy(json_thing)}},
                },
            },
            "/things/{thing_id}": {
                "parameters": [{"in": "path", "name": "thing_id", "required": True, "schema": {"type": "string"}}],
                "get": {"responses": {"200": {"description": "one", "content": copy.deepcopy(json_thing)}}},
                "delete": {"responses": {"204": {"description": "gone"}}},
            },
        },
    }


def _ids(change: Callable[[dict[str, Any]], None]) -> list[str]:
    new = _base()
    change(new)
    return [found.id for found in find_breaks(_base(), new)]


def _thing(document: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"]["Thing"]
    return schema


def _list_get(document: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"]["/things"]["get"]
    return operation


def test_identical_documents_have_no_breaks() -> None:
    assert find_breaks(_base(), _base()) == []


def test_path_removed() -> None:
    assert _ids(lambda d: d["paths"].pop("/things/{thing_id}")) == ["path-removed /things/{thing_id}"]


def test_operation_removed() -> None:
    assert _ids(lambda d: d["paths"]["/things/{thing_id}"].pop("delete")) == ["operation-removed DELETE /things/{thing_id}"]


def test_response_code_removed() -> None:
    assert _ids(lambda d: _list_get(d)["responses"].pop("401")) == ["response-removed GET /things 401"]


def test_response_field_removed_through_refs() -> None:
    ids = _ids(lambda d: _thing(d)["properties"].pop("size"))
    assert "response-field-removed GET /things 200 data.items[].size" in ids
    assert "response-field-removed GET /things/{thing_id} 200 size" in ids
    assert "response-field-removed POST /things 201 size" in ids
    # On the request side, the same removal is a field the server no longer accepts.
    assert "request-field-removed POST /things body.size" in ids


def test_envelope_field_removed() -> None:
    def change(document: dict[str, Any]) -> None:
        data = _list_get(document)["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]
        data["properties"].pop("next_cursor")
        data["required"].remove("next_cursor")

    assert _ids(change) == ["response-field-removed GET /things 200 data.next_cursor"]


def test_response_field_no_longer_required() -> None:
    def change(document: dict[str, Any]) -> None:
        data = _list_get(document)["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]
        data["required"].remove("next_cursor")

    assert _ids(change) == ["response-field-now-optional GET /things 200 data.next_cursor"]


def test_response_header_removed() -> None:
    ids = _ids(lambda d: _list_get(d)["responses"]["200"].pop("headers"))
    assert ids == ["response-header-removed GET /things 200 X-Request-ID"]


def test_response_media_type_removed() -> None:
    def change(document: dict[str, Any]) -> None:
        document["paths"]["/things/{thing_id}"]["get"]["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}

    assert _ids(change) == ["response-media-type-removed GET /things/{thing_id} 200 application/json"]


def test_new_required_request_field() -> None:
    def change(document: dict[str, Any]) -> None:
        _thing(document)["properties"]["owner"] = {"type": "string"}
        _thing(document)["required"].append("owner")

    assert _ids(change) == ["request-field-required POST /things body.owner"]


def test_optional_request_field_became_required() -> None:
    assert _ids(lambda d: _thing(d)["required"].append("size")) == ["request-field-required POST /things body.size"]


def test_read_only_required_field_passes() -> None:
    def change(document: dict[str, Any]) -> None:
        _thing(document)["properties"]["created_at"] = {"type": "string", "readOnly": True}
        _thing(document)["required"].append("created_at")

    assert _ids(change) == []


def test_request_body_became_required() -> None:
    def change(document: dict[str, Any]) -> None:
        document["paths"]["/things/{thing_id}"]["delete"]["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }

    assert _ids(change) == ["request-body-required DELETE /things/{thing_id}"]


def test_request_media_type_removed() -> None:
    def change(document: dict[str, Any]) -> None:
        content = document["paths"]["/things"]["post"]["requestBody"]["content"]
        content["application/merge-patch+json"] = content.pop("application/json")

    assert _ids(change) == ["request-media-type-removed POST /things application/json"]


def test_new_required_parameter() -> None:
    def change(document: dict[str, Any]) -> None:
        _list_get(document)["parameters"].append({"in": "query", "name": "team", "required": True, "schema": {"type": "string"}})

    assert _ids(change) == ["parameter-required GET /things query.team"]


def test_optional_parameter_became_required() -> None:
    assert _ids(lambda d: _list_get(d)["parameters"][1].update(required=True)) == ["parameter-required GET /things query.limit"]


def test_parameter_removed() -> None:
    assert _ids(lambda d: _list_get(d)["parameters"].pop(0)) == ["parameter-removed GET /things query.kind"]


def test_header_parameter_names_are_case_insensitive() -> None:
    assert _ids(lambda d: _list_get(d)["parameters"][2].update(name="x-trace")) == []


def test_request_type_changed() -> None:
    assert _ids(lambda d: _list_get(d)["parameters"][1]["schema"].update(type="string")) == ["type-changed GET /things query.limit"]


def test_request_type_narrowed_by_dropping_null() -> None:
    ids = _ids(lambda d: _thing(d)["properties"]["note"].update(type="string"))
    assert ids == ["type-changed POST /things body.note"]


def test_response_type_widened_with_null() -> None:
    ids = _ids(lambda d: _thing(d)["properties"]["size"].update(type=["integer", "null"]))
    assert "type-changed GET /things 200 data.items[].size" in ids
    assert "type-changed GET /things/{thing_id} 200 size" in ids
    assert not any(found.startswith("type-changed POST /things body") for found in ids)


def test_enum_lost_value() -> None:
    assert _ids(lambda d: _list_get(d)["parameters"][0]["schema"].update(enum=["a"])) == ["enum-value-removed GET /things query.kind b"]


def test_enum_lost_value_in_request_body() -> None:
    ids = _ids(lambda d: _thing(d)["properties"]["kind"].update(enum=["b"]))
    assert ids == ["enum-value-removed POST /things body.kind a"]


@pytest.mark.parametrize(
    ("field", "change", "keyword"),
    [
        ("name", {"maxLength": 100}, "maxLength"),
        ("name", {"minLength": 2}, "minLength"),
        ("size", {"maximum": 50}, "maximum"),
        ("size", {"minimum": 1}, "minimum"),
        ("size", {"exclusiveMaximum": 100}, "exclusiveMaximum"),
        ("size", {"multipleOf": 5}, "multipleOf"),
        ("tags", {"maxItems": 5}, "maxItems"),
        ("tags", {"minItems": 1}, "minItems"),
        ("tags", {"uniqueItems": True}, "uniqueItems"),
        ("name", {"pattern": "^[a-z]+$"}, "pattern"),
        ("name", {"format": "email"}, "format"),
        ("note", {"enum": ["x", None]}, "enum"),
    ],
)
def test_tightened_constraint(field: str, change: dict[str, Any], keyword: str) -> None:
    ids = _ids(lambda d: _thing(d)["properties"][field].update(change))
    assert ids == [f"constraint-tightened POST /things body.{field} {keyword}"]


def test_changed_pattern_is_tightened() -> None:
    def change(document: dict[str, Any]) -> None:
        document["paths"]["/things"]["get"]["parameters"][2]["schema"]["pattern"] = "^[0-9]+$"

    assert _ids(change) == ["constraint-tightened GET /things header.X-Trace pattern"]


def test_closed_additional_properties_is_tightened() -> None:
    def change(document: dict[str, Any]) -> None:
        document["paths"]["/things/{thing_id}"]["delete"]["requestBody"] = {
            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": False}}}
        }

    old = _base()
    old["paths"]["/things/{thing_id}"]["delete"]["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
    new = _base()
    change(new)
    assert [found.id for found in find_breaks(old, new)] == ["constraint-tightened DELETE /things/{thing_id} body additionalProperties"]


def test_additive_changes_pass() -> None:
    def change(document: dict[str, Any]) -> None:
        document["paths"]["/widgets"] = {"get": {"responses": {"200": {"description": "new route"}}}}
        document["paths"]["/things/{thing_id}"]["patch"] = {"responses": {"200": {"description": "new operation"}}}
        _list_get(document)["parameters"].append({"in": "query", "name": "q", "schema": {"type": "string"}})
        _list_get(document)["responses"]["429"] = {"description": "new response code"}
        _list_get(document)["responses"]["200"]["headers"]["RateLimit"] = {"schema": {"type": "string"}}
        _list_get(document)["parameters"][0]["schema"]["enum"].append("c")
        _list_get(document)["parameters"][1]["schema"]["type"] = "number"
        thing = _thing(document)
        thing["properties"]["colour"] = {"type": "string"}
        thing["properties"]["name"].update(maxLength=500, minLength=0)
        thing["properties"]["size"].pop("maximum")
        thing["properties"]["tags"]["maxItems"] = 20
        thing["properties"]["kind"]["enum"].append("c")
        thing["required"].append("id")

    assert _ids(change) == []


def test_recursive_schema_terminates() -> None:
    ids = _ids(lambda d: _thing(d)["properties"].pop("note"))
    assert "response-field-removed GET /things/{thing_id} 200 note" in ids
    assert "response-field-removed GET /things/{thing_id} 200 parent.note" not in ids


def test_break_ids_are_unique_and_sorted() -> None:
    ids = _ids(lambda d: _thing(d)["properties"].pop("size"))
    assert ids == sorted(set(ids))


def _changelog(*items: str, released: str = "") -> str:
    body = "\n".join(items)
    return f"# Changelog\n\n## Unreleased\n\n{body}\n\n## 0.1.0\n\n{released}\n"


def test_changelog_allows_listed_break() -> None:
    new = _base()
    _list_get(new)["responses"].pop("401")
    changelog = _changelog("- Add widgets.", "- Breaking: `response-removed GET /things 401` unauthenticated reads are public now.")
    report = check_contract(_base(), new, changelog)
    assert report.ok, report.render()
    assert [found.id for found in report.breaks] == ["response-removed GET /things 401"]
    assert "allowed  response-removed GET /things 401" in report.render()


def test_changelog_without_entry_fails() -> None:
    new = _base()
    _list_get(new)["responses"].pop("401")
    report = check_contract(_base(), new, _changelog("- Add widgets."))
    assert not report.ok
    assert "BREAKING response-removed GET /things 401" in report.render()


def test_changelog_entry_in_released_section_does_not_allow() -> None:
    new = _base()
    _list_get(new)["responses"].pop("401")
    changelog = _changelog("- Add widgets.", released="- Breaking: `response-removed GET /things 401` old.")
    assert not check_contract(_base(), new, changelog).ok


def test_changelog_malformed_breaking_line_fails() -> None:
    report = check_contract(_base(), _base(), _changelog("- Breaking: response-removed GET /things 401"))
    assert not report.ok
    assert report.allow_list.malformed == ("- Breaking: response-removed GET /things 401",)
    assert "MALFORMED" in report.render()


def test_changelog_unused_entry_is_noted() -> None:
    report = check_contract(_base(), _base(), _changelog("- Breaking: `path-removed /gone` moved."))
    assert report.ok
    assert report.unused_allowances == ("path-removed /gone",)


def test_allow_list_syntax_variants() -> None:
    allow_list = parse_allow_list(
        "## [Unreleased]\n* breaking: `path-removed   /a`\n- Breaking: `path-removed /b` — why\n### Details\n"
        "- Breaking: `path-removed /c`\n## 1.0.0\n- Breaking: `path-removed /d`\n"
    )
    assert allow_list.ids == {"path-removed /a", "path-removed /b", "path-removed /c"}
    assert allow_list.malformed == ()


def _cli(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(federation_cli, ["contract-check", *args])
    return result.exit_code, result.output


@pytest.fixture
def docs_app() -> Flask:
    from flask_federation import Federation

    app = Flask("contract_cli")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FEDERATION_ENABLED=True)
    Federation(app)
    return app


def test_cli_passes_on_current_app(docs_app: Flask) -> None:
    code, output = _cli(docs_app, "--released", str(RELEASED), "--changelog", str(CHANGELOG))
    assert code == 0, output
    assert "Contract check passed" in output


def test_cli_fails_on_break(docs_app: Flask, tmp_path: Path) -> None:
    released = load_document(RELEASED)
    released["paths"]["/provider/v1/retired"] = {"get": {"responses": {"200": {"description": "gone"}}}}
    path = tmp_path / "released.json"
    path.write_text(json.dumps(released), encoding="utf-8")
    code, output = _cli(docs_app, "--released", str(path), "--changelog", str(tmp_path / "none.md"))
    assert code == 1
    assert "BREAKING path-removed /provider/v1/retired" in output


def test_cli_compares_two_files(docs_app: Flask, tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(_base()), encoding="utf-8")
    document = _base()
    _list_get(document)["parameters"].pop(0)
    new.write_text(json.dumps(document), encoding="utf-8")
    code, output = _cli(docs_app, "--released", str(old), "--current", str(new), "--changelog", str(tmp_path / "x.md"))
    assert code == 1
    assert "BREAKING parameter-removed GET /things query.kind" in output


def test_cli_reports_unreadable_document(docs_app: Flask, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    code, output = _cli(docs_app, "--released", str(broken))
    assert code != 0
    assert "broken.json" in output
    assert "Traceback" not in output


def test_all_of_and_one_of_are_followed() -> None:
    def wrap(document: dict[str, Any]) -> None:
        thing = document["components"]["schemas"]["Thing"]
        document["components"]["schemas"]["Named"] = {
            "type": "object",
            "required": ["name"],
            "properties": {"name": thing["properties"].pop("name")},
        }
        thing["required"].remove("name")
        document["components"]["schemas"]["Thing"] = {"allOf": [{"$ref": "#/components/schemas/Named"}, thing]}

    old, new = _base(), _base()
    wrap(old)
    wrap(new)
    new["components"]["schemas"]["Named"]["properties"]["name"]["maxLength"] = 10
    assert [found.id for found in find_breaks(old, new)] == ["constraint-tightened POST /things body.name maxLength"]

    unchanged = _base()
    wrap(unchanged)
    assert find_breaks(_base(), unchanged) == []

    one_of = _base()
    thing = one_of["components"]["schemas"]["Thing"]
    one_of["components"]["schemas"]["Thing"] = {"oneOf": [thing, {"type": "object", "properties": {"other": {"type": "string"}}}]}
    ids = [found.id for found in find_breaks(_base(), one_of)]
    assert "response-field-now-optional GET /things/{thing_id} 200 name" in ids
    assert "response-field-removed GET /things/{thing_id} 200 name" not in ids
