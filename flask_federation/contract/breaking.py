"""Finding the breaking changes between the released OpenAPI document and a newer one.

:func:`find_breaks` walks every path, operation, parameter, request body and
response of the released document and looks for its counterpart in the new one.
What the new document adds (routes, operations, optional fields and parameters,
response codes, enum values in responses) is never a break. The module does not
import Flask, so it also runs on two JSON files alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .schema_diff import Break, Direction, Documents, Reporter, Schema, SchemaComparison, resolve

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def find_breaks(released: Schema, current: Schema) -> list[Break]:
    """Return the changes from ``released`` to ``current`` that break existing clients, sorted by id."""
    documents = Documents(released, current)
    breaks: dict[str, Break] = {}

    def report(found: Break) -> None:
        breaks.setdefault(found.id, found)

    old_paths: Mapping[str, Any] = released.get("paths", {})
    new_paths: Mapping[str, Any] = current.get("paths", {})
    for path in sorted(old_paths):
        if path not in new_paths:
            report(Break(f"path-removed {path}", f"{path}: path removed with all its operations."))
            continue

        old_item, _ = resolve(released, old_paths[path])
        new_item, _ = resolve(current, new_paths[path])
        for method in HTTP_METHODS:
            if method not in old_item:
                continue

            operation = f"{method.upper()} {path}"
            if method not in new_item:
                report(Break(f"operation-removed {operation}", f"{operation}: operation removed."))
                continue

            _compare_operation(documents, operation, (old_item, old_item[method]), (new_item, new_item[method]), report)

    return sorted(breaks.values())


def _compare_operation(
    documents: Documents,
    operation: str,
    old: tuple[Schema, Schema],
    new: tuple[Schema, Schema],
    report: Reporter,
) -> None:
    _compare_parameters(documents, operation, _parameters(documents.old, *old), _parameters(documents.new, *new), report)
    _compare_request_body(documents, operation, old[1].get("requestBody"), new[1].get("requestBody"), report)
    _compare_responses(documents, operation, old[1].get("responses", {}), new[1].get("responses", {}), report)


def _parameters(document: Schema, path_item: Schema, operation: Schema) -> dict[tuple[str, str], Schema]:
    """Return the parameters of an operation keyed by (location, name); the operation's win over the path's."""
    parameters: dict[tuple[str, str], Schema] = {}
    for node in [*path_item.get("parameters", ()), *operation.get("parameters", ())]:
        parameter, _ = resolve(document, node)
        location, name = parameter["in"], parameter["name"]
        # Header names are case-insensitive in HTTP.
        parameters[(location, name.lower() if location == "header" else name)] = parameter
    return parameters


def _compare_parameters(
    documents: Documents,
    operation: str,
    old: dict[tuple[str, str], Schema],
    new: dict[tuple[str, str], Schema],
    report: Reporter,
) -> None:
    for key in sorted(old):
        location = f"{key[0]}.{old[key]['name']}"
        if key not in new:
            report(Break(f"parameter-removed {operation} {location}", f"{operation} {location}: parameter removed."))
            continue

        if new[key].get("required") is True and old[key].get("required") is not True:
            report(Break(f"parameter-required {operation} {location}", f"{operation} {location}: parameter became required."))
        _schemas(documents, "request", operation, old[key], new[key], location, report)

    for key in sorted(new.keys() - old.keys()):
        if new[key].get("required") is True:
            location = f"{key[0]}.{new[key]['name']}"
            report(Break(f"parameter-required {operation} {location}", f"{operation} {location}: new required parameter."))


def _compare_request_body(documents: Documents, operation: str, old_node: Any, new_node: Any, report: Reporter) -> None:
    old_body, _ = resolve(documents.old, old_node) if old_node is not None else ({}, None)
    new_body, _ = resolve(documents.new, new_node) if new_node is not None else ({}, None)
    if new_body.get("required") is True and old_body.get("required") is not True:
        report(Break(f"request-body-required {operation}", f"{operation}: a request body became required."))

    old_content: Mapping[str, Any] = old_body.get("content", {})
    new_content: Mapping[str, Any] = new_body.get("content", {})
    for media_type in sorted(old_content):
        if media_type not in new_content:
            report(
                Break(
                    f"request-media-type-removed {operation} {media_type}",
                    f"{operation}: request body type {media_type} is no longer accepted.",
                )
            )
            continue

        _schemas(documents, "request", operation, old_content[media_type], new_content[media_type], "body", report)


def _compare_responses(
    documents: Documents, operation: str, old_responses: Mapping[str, Any], new_responses: Mapping[str, Any], report: Reporter
) -> None:
    for status in sorted(old_responses):
        where = f"{operation} {status}"
        if status not in new_responses:
            report(Break(f"response-removed {where}", f"{where}: response code removed."))
            continue

        old_response, _ = resolve(documents.old, old_responses[status])
        new_response, _ = resolve(documents.new, new_responses[status])
        new_headers = {name.lower() for name in new_response.get("headers", {})}
        for header in sorted(old_response.get("headers", {})):
            if header.lower() not in new_headers:
                report(Break(f"response-header-removed {where} {header}", f"{where}: header {header} removed."))

        old_content: Mapping[str, Any] = old_response.get("content", {})
        new_content: Mapping[str, Any] = new_response.get("content", {})
        for media_type in sorted(old_content):
            if media_type not in new_content:
                report(Break(f"response-media-type-removed {where} {media_type}", f"{where}: {media_type} body removed."))
                continue

            _schemas(documents, "response", where, old_content[media_type], new_content[media_type], "", report)


def _schemas(
    documents: Documents,
    direction: Direction,
    operation: str,
    old_holder: Schema,
    new_holder: Schema,
    location: str,
    report: Reporter,
) -> None:
    """Compare the ``schema`` of two parameters or media types, when both have one."""
    if "schema" in old_holder and "schema" in new_holder:
        SchemaComparison(documents, direction, operation, report).compare(old_holder["schema"], new_holder["schema"], location)


def iter_operations(document: Schema) -> Iterator[tuple[str, str]]:
    """Yield (METHOD, path) for every operation of ``document``, sorted by path."""
    for path in sorted(document.get("paths", {})):
        item, _ = resolve(document, document["paths"][path])
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path
