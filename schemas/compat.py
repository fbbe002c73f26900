"""Backward-compatibility check between two JSON Schemas of the same wire model.

A change is *breaking* when a message valid under the old schema can be invalid under the new
one, or when a reader of the old shape loses something it relied on:

- a property removed (a rename is a removal plus an addition);
- a type changed or narrowed (``integer`` -> ``number`` is a widening and allowed);
- a property newly required;
- an enum (or const) value removed, or an enum imposed where there was none;
- a bound tightened: ``minimum``/``minLength``/``minItems`` raised, ``maximum``/``maxLength``/
  ``maxItems`` lowered, a ``pattern`` or ``format`` added or changed.

Adding optional properties, enum values, or widening types is compatible. Schemas are the
pydantic-generated kind: ``$ref`` into ``$defs``, ``anyOf`` for unions and optionals.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Human-readable breaking changes from ``old`` to ``new`` (empty when compatible)."""
    return _Comparison(old, new).run()


class _Comparison:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.problems: list[str] = []
        self.seen: set[tuple[int, int]] = set()

    def run(self) -> list[str]:
        self.compare(self.old_root, self.new_root, "$")
        return self.problems

    def compare(self, old: Schema, new: Schema, path: str) -> None:
        old, new = _resolve(old, self.old_root), _resolve(new, self.new_root)
        if (id(old), id(new)) in self.seen:
            return
        self.seen.add((id(old), id(new)))
        self._types(old, new, path)
        self._enums(old, new, path)
        self._bounds(old, new, path)
        for key, suffix in (("properties", ""), ("items", "[]"), ("additionalProperties", "{}")):
            old_b = _branch_with(key, _branches(old, self.old_root))
            new_b = _branch_with(key, _branches(new, self.new_root))
            if old_b is None or new_b is None:
                continue
            if key == "properties":
                self._object(old_b, new_b, path)
            elif isinstance(old_b[key], dict) and isinstance(new_b[key], dict):
                self.compare(old_b[key], new_b[key], path + suffix)

    def _object(self, old: Schema, new: Schema, path: str) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name, old_prop in old_props.items():
            if name not in new_props:
                self.problems.append(f"{path}.{name}: property removed")
            else:
                self.compare(old_prop, new_props[name], f"{path}.{name}")
        for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
            self.problems.append(f"{path}.{name}: newly required")
        if (
            new.get("additionalProperties") is False
            and old.get("additionalProperties") is not False
        ):
            self.problems.append(f"{path}: additional properties newly forbidden")

    def _types(self, old: Schema, new: Schema, path: str) -> None:
        old_types, new_types = (
            _type_set(_branches(old, self.old_root)),
            _type_set(_branches(new, self.new_root)),
        )
        if new_types is None:
            return  # anything goes now
        if old_types is None:
            self.problems.append(f"{path}: type narrowed from any to {sorted(new_types)}")
            return
        if "number" in new_types:
            new_types = new_types | {"integer"}
        lost = old_types - new_types
        if lost:
            self.problems.append(
                f"{path}: type changed from {sorted(old_types)} to {sorted(new_types)}"
            )

    def _enums(self, old: Schema, new: Schema, path: str) -> None:
        old_values, new_values = (
            _enum_set(_branches(old, self.old_root)),
            _enum_set(_branches(new, self.new_root)),
        )
        if new_values is None:
            return
        if old_values is None:
            self.problems.append(f"{path}: enum newly imposed {sorted(map(repr, new_values))}")
            return
        removed = old_values - new_values
        if removed:
            self.problems.append(f"{path}: enum values removed {sorted(map(repr, removed))}")

    def _bounds(self, old: Schema, new: Schema, path: str) -> None:
        old_s, new_s = (
            _single(_branches(old, self.old_root)),
            _single(_branches(new, self.new_root)),
        )
        if old_s is None or new_s is None:
            return
        for key in _LOWER_BOUNDS:
            if key in new_s and (key not in old_s or new_s[key] > old_s[key]):
                self.problems.append(f"{path}: {key} raised to {new_s[key]}")
        for key in _UPPER_BOUNDS:
            if key in new_s and (key not in old_s or new_s[key] < old_s[key]):
                self.problems.append(f"{path}: {key} lowered to {new_s[key]}")
        for key in ("pattern", "format"):
            if key in new_s and new_s[key] != old_s.get(key):
                self.problems.append(f"{path}: {key} changed to {new_s[key]!r}")


def _resolve(schema: Schema, root: Schema) -> Schema:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref}")
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        schema = node
    return schema


def _branches(schema: Schema, root: Schema) -> list[Schema]:
    """The alternatives of a schema, ``$ref``s resolved and nested ``anyOf``s flattened."""
    schema = _resolve(schema, root)
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives is None:
        return [schema]
    return [b for alt in alternatives for b in _branches(alt, root)]


def _branch_with(key: str, branches: list[Schema]) -> Schema | None:
    return next((b for b in branches if key in b), None)


def _type_set(branches: list[Schema]) -> set[str] | None:
    """JSON types a schema admits; None when unconstrained."""
    types: set[str] = set()
    for branch in branches:
        if "type" in branch:
            kind = branch["type"]
            types.update(kind if isinstance(kind, list) else [kind])
        elif "const" in branch or "enum" in branch:
            values = branch.get("enum", [branch.get("const")])
            types.update(_JSON_TYPES.get(type(v), "object") for v in values)
        elif "properties" in branch:
            types.add("object")
        else:
            return None
    return types


def _enum_set(branches: list[Schema]) -> set[Any] | None:
    """Values a schema admits when it is an enum (null branches count as ``None``); else None."""
    values: set[Any] = set()
    for branch in branches:
        if "const" in branch:
            values.add(_hashable(branch["const"]))
        elif "enum" in branch:
            values.update(_hashable(v) for v in branch["enum"])
        elif branch.get("type") == "null":
            values.add(None)
        else:
            return None
    return values


def _single(branches: list[Schema]) -> Schema | None:
    """The one non-null branch (where constraints live), if there is exactly one."""
    non_null = [b for b in branches if b.get("type") != "null"]
    return non_null[0] if len(non_null) == 1 else None


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, dict | list) else value
