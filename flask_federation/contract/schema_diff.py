"""Comparing two JSON Schemas, as OpenAPI 3.1 documents embed them, for breaking changes.

The comparison takes the direction of data flow into account. In a *request* the client writes and the
server reads, so a change breaks clients when the server accepts less than before: a
narrower type, fewer enum values, a tighter constraint, a field removed or newly
required. In a *response* the server writes and the client reads, so a change breaks
clients when they may receive something they did not before: a new type, or a field
that is gone or no longer always present.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

Direction = Literal["request", "response"]
Schema = Mapping[str, Any]

#: Keywords whose lower value accepts less (an upper bound that moved down, or appeared).
UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
#: Keywords whose higher value accepts less (a lower bound that moved up, or appeared).
LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")


@dataclasses.dataclass(frozen=True, order=True)
class Break:
    """One breaking change: a stable ``id`` for allow-lists and a message for people.

    The id is the kind followed by the operation and the location, separated by
    single spaces, for example
    ``response-field-removed GET /provider/v1/tenants 200 data.items[].slug``.
    """

    id: str
    message: str

    @property
    def kind(self) -> str:
        return self.id.partition(" ")[0]


Reporter = Callable[[Break], None]


class UnresolvableReference(ValueError):
    """A ``$ref`` that does not point inside the same document."""


@dataclasses.dataclass(frozen=True)
class Documents:
    """The released (old) and generated (new) documents, to resolve ``$ref`` in each."""

    old: Schema
    new: Schema


def resolve(document: Schema, node: Any) -> tuple[Any, str | None]:
    """Follow ``$ref`` chains inside ``document``; return the target and the last reference followed.

    Keywords beside a ``$ref`` (allowed in OpenAPI 3.1) override the target's.
    """
    reference: str | None = None
    hops = 0
    while isinstance(node, Mapping) and "$ref" in node:
        reference = node["$ref"]
        if not isinstance(reference, str) or not reference.startswith("#/"):
            raise UnresolvableReference(f"Only local references such as '#/components/schemas/X' are supported, got {reference!r}.")

        target: Any = document
        for part in reference[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise UnresolvableReference(f"Reference {reference!r} points to nothing in the document.")
            target = target[part]

        siblings = {key: value for key, value in node.items() if key != "$ref"}
        node = {**target, **siblings} if siblings and isinstance(target, Mapping) else target
        hops += 1
        if hops > 64:
            raise UnresolvableReference(f"Reference {reference!r} is part of a loop of references.")

    return node, reference


def _merge_branches(document: Schema, branches: list[Any], *, all_required: bool) -> dict[str, Any]:
    """Merge ``allOf`` (``all_required``) or ``oneOf``/``anyOf`` branches into one object view.

    NOTE: for ``oneOf``/``anyOf`` this is an approximation: a property counts as
    present when any branch has it and as required only when every branch requires it.
    """
    properties: dict[str, Any] = {}
    required_sets: list[set[str]] = []
    # allOf allows the types every branch allows; oneOf/anyOf the types any branch allows.
    type_sets: list[set[str] | None] = []
    merged: dict[str, Any] = {}
    for branch in branches:
        flat = flatten(document, branch)
        for name, value in flat.get("properties", {}).items():
            properties.setdefault(name, value)
        required_sets.append(set(flat.get("required", ())))
        type_sets.append(schema_types(flat))
        for key, value in flat.items():
            if key not in {"properties", "required", "type"}:
                merged.setdefault(key, value)

    if properties:
        merged["properties"] = properties
    if required_sets:
        required = set.union(*required_sets) if all_required else set.intersection(*required_sets)
        merged["required"] = sorted(required)
    restricting = [types for types in type_sets if types is not None]
    if all_required and restricting:
        merged["type"] = sorted(set.intersection(*restricting))
    elif not all_required and restricting and len(restricting) == len(type_sets):
        merged["type"] = sorted(set.union(*restricting))
    return merged


def flatten(document: Schema, node: Any) -> dict[str, Any]:
    """Return ``node`` with ``$ref`` resolved and ``allOf``/``oneOf``/``anyOf`` merged into it."""
    resolved, _ = resolve(document, node)
    if not isinstance(resolved, Mapping):
        # JSON Schema allows true (anything) and false (nothing) as schemas.
        return {} if resolved is not False else {"not": {}}

    result = {key: value for key, value in resolved.items() if key not in {"allOf", "oneOf", "anyOf"}}
    if "allOf" in resolved:
        merged = _merge_branches(document, [result, *resolved["allOf"]], all_required=True)
        result = merged
    for keyword in ("oneOf", "anyOf"):
        if keyword in resolved:
            alternatives = _merge_branches(document, list(resolved[keyword]), all_required=False)
            for key, value in alternatives.items():
                if key == "properties":
                    result["properties"] = {**value, **result.get("properties", {})}
                elif key == "required":
                    result["required"] = sorted(set(result.get("required", ())) | set(value))
                else:
                    result.setdefault(key, value)
    return result


def schema_types(schema: Schema) -> set[str] | None:
    """Return the JSON types a schema allows, or ``None`` when it does not restrict the type."""
    declared = schema.get("type")
    if declared is None:
        if "properties" in schema:
            types = {"object"}
        elif "items" in schema:
            types = {"array"}
        else:
            return None
    else:
        types = {declared} if isinstance(declared, str) else set(declared)

    if schema.get("nullable") is True:  # OpenAPI 3.0 spelling of "null" in the type list
        types.add("null")
    return types


def _missing_types(wider: set[str], narrower: set[str]) -> set[str]:
    """Return the types of ``wider`` that ``narrower`` lacks; "integer" is covered by "number"."""
    missing = wider - narrower
    if "integer" in missing and "number" in narrower:
        missing.discard("integer")
    return missing


def _enum_values(schema: Schema) -> dict[str, Any] | None:
    if "enum" in schema:
        values = list(schema["enum"])
    elif "const" in schema:
        values = [schema["const"]]
    else:
        return None
    return {json.dumps(value, sort_keys=True): value for value in values}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _tightened_constraints(old: Schema, new: Schema) -> Iterator[tuple[str, str]]:
    """Yield (keyword, description) for every constraint on which ``new`` accepts less than ``old``."""
    for keyword in UPPER_BOUNDS:
        new_value = _number(new.get(keyword))
        old_value = _number(old.get(keyword))
        if new_value is not None and (old_value is None or new_value < old_value):
            yield keyword, f"{keyword} {_show(old.get(keyword))} -> {_show(new.get(keyword))}"

    for keyword in LOWER_BOUNDS:
        new_value = _number(new.get(keyword))
        old_value = _number(old.get(keyword))
        floor = -math.inf if keyword in {"minimum", "exclusiveMinimum"} else 0.0
        if new_value is not None and new_value > (old_value if old_value is not None else floor):
            yield keyword, f"{keyword} {_show(old.get(keyword))} -> {_show(new.get(keyword))}"

    for keyword in ("pattern", "format"):
        if keyword in new and new.get(keyword) != old.get(keyword):
            yield keyword, f"{keyword} {_show(old.get(keyword))} -> {_show(new.get(keyword))}"

    new_multiple, old_multiple = _number(new.get("multipleOf")), _number(old.get("multipleOf"))
    if new_multiple is not None and (old_multiple is None or old_multiple % new_multiple != 0):
        yield "multipleOf", f"multipleOf {_show(old.get('multipleOf'))} -> {_show(new.get('multipleOf'))}"

    if new.get("uniqueItems") is True and old.get("uniqueItems") is not True:
        yield "uniqueItems", "uniqueItems false -> true"

    if new.get("additionalProperties") is False and old.get("additionalProperties") is not False:
        yield "additionalProperties", "additionalProperties allowed -> false"


def _show(value: Any) -> str:
    return "unset" if value is None else json.dumps(value)


def _join(location: str, name: str) -> str:
    return f"{location}.{name}" if location else name


@dataclasses.dataclass
class SchemaComparison:
    """A comparison of the schemas found at one place of an operation, for one direction of data flow.

    ``operation`` prefixes every break id (for example ``GET /provider/v1/tenants 200``);
    ``report`` receives each break.
    """

    documents: Documents
    direction: Direction
    operation: str
    report: Reporter
    #: Reference pairs being compared further up, to stop on recursive schemas.
    _stack: list[tuple[str | None, str | None]] = dataclasses.field(default_factory=list)

    def _break(self, kind: str, location: str, message: str, suffix: str = "") -> None:
        parts = [kind, self.operation, location or "(root)"]
        if suffix:
            parts.append(suffix)
        self.report(Break(" ".join(parts), f"{self.operation} {location or '(root)'}: {message}"))

    def compare(self, old_node: Any, new_node: Any, location: str) -> None:
        _, old_ref = resolve(self.documents.old, old_node)
        _, new_ref = resolve(self.documents.new, new_node)
        pair = (old_ref, new_ref)
        if (old_ref or new_ref) and pair in self._stack:
            return

        self._stack.append(pair)
        try:
            old = flatten(self.documents.old, old_node)
            new = flatten(self.documents.new, new_node)
            self._compare_types(old, new, location)
            if self.direction == "request":
                self._compare_request_values(old, new, location)
            self._compare_properties(old, new, location)
            if isinstance(old.get("items"), (Mapping, bool)) and isinstance(new.get("items"), (Mapping, bool)):
                self.compare(old["items"], new["items"], f"{location}[]")
            old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
            if isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
                self.compare(old_extra, new_extra, _join(location, "*"))
        finally:
            self._stack.pop()

    def _compare_types(self, old: Schema, new: Schema, location: str) -> None:
        old_types, new_types = schema_types(old), schema_types(new)
        if self.direction == "request":
            # The server must still accept every type it accepted before.
            if new_types is None:
                return
            lost = {"any"} if old_types is None else _missing_types(old_types, new_types)
        else:
            # The client must still understand every type it may now receive.
            if old_types is None:
                return
            lost = {"any"} if new_types is None else _missing_types(new_types, old_types)

        if lost:
            before = _show(sorted(old_types) if old_types else None)
            after = _show(sorted(new_types) if new_types else None)
            self._break("type-changed", location, f"type changed from {before} to {after}.")

    def _compare_request_values(self, old: Schema, new: Schema, location: str) -> None:
        old_values, new_values = _enum_values(old), _enum_values(new)
        if new_values is not None:
            if old_values is None:
                self._break("constraint-tightened", location, f"now accepts only {sorted(new_values)}.", "enum")
            else:
                for key in sorted(old_values.keys() - new_values.keys()):
                    value = old_values[key]
                    label = value if isinstance(value, str) else key
                    self._break("enum-value-removed", location, f"no longer accepts the value {key}.", label)

        for keyword, description in _tightened_constraints(old, new):
            self._break("constraint-tightened", location, f"constraint tightened: {description}.", keyword)

    def _compare_properties(self, old: Schema, new: Schema, location: str) -> None:
        # A request never carries read-only fields and a response never carries write-only ones.
        hidden = "readOnly" if self.direction == "request" else "writeOnly"
        old_properties = _visible_properties(self.documents.old, old, hidden)
        new_properties = _visible_properties(self.documents.new, new, hidden)
        new_hidden = set(new.get("properties", {})) - new_properties.keys()
        old_required = set(old.get("required", ()))
        new_required = set(new.get("required", ())) - new_hidden

        for name in sorted(old_properties):
            path = _join(location, name)
            if name not in new_properties:
                kind = "request-field-removed" if self.direction == "request" else "response-field-removed"
                self._break(kind, path, "field removed.")
                continue

            if self.direction == "response" and name in old_required and name not in new_required:
                self._break("response-field-now-optional", path, "field is no longer always present.")
            self.compare(old_properties[name], new_properties[name], path)

        if self.direction == "request":
            for name in sorted(new_required - old_required):
                detail = "field became required." if name in old_properties else "new required field."
                self._break("request-field-required", _join(location, name), detail)


def _visible_properties(document: Schema, schema: Schema, hidden: str) -> dict[str, Any]:
    visible: dict[str, Any] = {}
    for name, node in schema.get("properties", {}).items():
        target, _ = resolve(document, node)
        if isinstance(target, Mapping) and target.get(hidden) is True:
            continue
        visible[name] = node
    return visible
