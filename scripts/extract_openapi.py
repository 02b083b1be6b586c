"""Cut a small, self-contained OpenAPI description out of a large one.

    python scripts/extract_openapi.py SOURCE.json OUT.json 'GET /app' 'POST /app-manifests/{code}'
    python scripts/extract_openapi.py SOURCE.json OUT.json @tests/data/github-operations.txt

Operations are named ``METHOD /path/template``. The output keeps those operations (and
their path-level parameters), every ``#/components/...`` object they reference,
transitively, and the security schemes, so that a validator needs nothing else. A
reference into any other part of the source (``#/paths/...``, as bundlers sometimes
write) is inlined, because the part it points to is not copied.

An ``@FILE`` argument reads operations from FILE, one a line; blank lines and lines
starting with ``#`` are ignored.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class ExtractError(ValueError):
    """The source or an operation name is not what the extractor can use."""


def _unescape(token: str) -> str:
    # JSON Pointer (RFC 6901): ~1 is "/" and ~0 is "~", decoded in that order.
    return token.replace("~1", "/").replace("~0", "~")


def resolve_pointer(document: Any, ref: str) -> Any:
    """The object a local reference (``#/a/b``) points to in ``document``."""
    if not ref.startswith("#"):
        raise ExtractError(f"{ref!r}: only local references (starting with '#') are supported")
    node = document
    for raw in ref[1:].split("/")[1:]:
        token = _unescape(raw)
        try:
            node = node[int(token)] if isinstance(node, list) else node[token]
        except (KeyError, IndexError, ValueError):
            raise ExtractError(f"{ref!r}: nothing at {token!r}") from None
    return node


def _component_key(ref: str) -> tuple[str, str] | None:
    """(section, name) when ``ref`` names a whole component, e.g. ``#/components/schemas/x``."""
    parts = ref.split("/")
    if len(parts) >= 4 and parts[0] == "#" and parts[1] == "components":
        return _unescape(parts[2]), _unescape(parts[3])
    return None


def parse_operation(name: str) -> tuple[str, str]:
    method, _, path = name.strip().partition(" ")
    method = method.lower()
    path = path.strip()
    if method not in HTTP_METHODS or not path.startswith("/"):
        raise ExtractError(
            f"{name!r}: an operation is 'METHOD /path/template', e.g. 'GET /repos/{{owner}}'"
        )
    return method, path


class _Extractor:
    def __init__(self, source: dict[str, Any]) -> None:
        self.source = source
        self.components: dict[str, dict[str, Any]] = {}
        self._inlining: list[str] = []
        self.dropped: list[str] = []

    def copy(self, node: Any) -> Any:
        """A deep copy of ``node`` whose component references are all collected."""
        if isinstance(node, list):
            return [self.copy(item) for item in node]
        if not isinstance(node, dict):
            return copy.deepcopy(node)
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self._reference(node, ref)
        copied = {}
        for key, value in node.items():
            if key == "discriminator" and isinstance(value, dict):
                discriminator = self._discriminator(value)
                if discriminator is not None:
                    copied[key] = discriminator
                continue
            copied[key] = self.copy(value)
        return copied

    def _discriminator(self, discriminator: dict[str, Any]) -> dict[str, Any] | None:
        """The discriminator with its mapped schemas collected, or None if they cannot be.

        Bundled descriptions (DigitalOcean's) keep mappings that point into the source
        files they were bundled from (``models/x.yml#/y``). Such a discriminator is
        dropped; the ``oneOf``/``anyOf`` beside it still validates the same values.
        """
        mapping = discriminator.get("mapping", {})
        for target in mapping.values():
            key = _component_key(target) if isinstance(target, str) else None
            if key is None or key[1] not in self.source.get("components", {}).get(key[0], {}):
                self.dropped.append(f"discriminator mapping to {target!r}")
                return None
        for target in mapping.values():
            self.copy({"$ref": target})
        return copy.deepcopy(discriminator)

    def _reference(self, node: dict[str, Any], ref: str) -> Any:
        key = _component_key(ref)
        if key is not None:
            section, name = key
            if name not in self.components.get(section, {}):
                # Reserve the slot before descending, so a schema that refers to itself
                # (trees, linked lists) is copied once rather than forever.
                self.components.setdefault(section, {})[name] = None
                target = self._component(section, name, ref)
                self.components[section][name] = self.copy(target)
            # A reference deeper than the component (…/schemas/x/properties/y) still
            # resolves once the whole component is present.
            return {k: (ref if k == "$ref" else self.copy(v)) for k, v in node.items()}
        if ref in self._inlining:
            raise ExtractError(f"{ref!r}: refers to itself and is not a component; cannot inline")
        self._inlining.append(ref)
        try:
            return self.copy(resolve_pointer(self.source, ref))
        finally:
            self._inlining.pop()

    def _component(self, section: str, name: str, ref: str) -> Any:
        try:
            return self.source["components"][section][name]
        except KeyError:
            raise ExtractError(f"{ref!r}: no such component in the source") from None


def extract(source: dict[str, Any], operations: list[str]) -> dict[str, Any]:
    """The subset of ``source`` with ``operations`` and everything they reference."""
    extractor = _Extractor(source)
    paths: dict[str, dict[str, Any]] = {}
    source_paths = source.get("paths", {})
    for name in operations:
        method, path = parse_operation(name)
        item = source_paths.get(path) or {}
        if isinstance(item.get("$ref"), str):
            item = resolve_pointer(source, item["$ref"])
        if method not in item:
            raise ExtractError(f"{name!r}: no such operation in the source")
        out = paths.setdefault(path, {})
        out[method] = extractor.copy(item[method])
        if "parameters" in item:
            out["parameters"] = extractor.copy(item["parameters"])
    # Security schemes are named, not referenced, by operations; keep them all (they are few).
    schemes = source.get("components", {}).get("securitySchemes")
    if schemes:
        extractor.components.setdefault("securitySchemes", {}).update(extractor.copy(schemes))
    subset: dict[str, Any] = {
        "openapi": source.get("openapi", "3.0.3"),
        "info": {
            "title": f"{source.get('info', {}).get('title', 'API')} (subset)",
            "version": str(source.get("info", {}).get("version", "0")),
        },
        "paths": paths,
        "components": {
            section: dict(sorted(items.items()))
            for section, items in sorted(extractor.components.items())
        },
    }
    for key in ("servers", "security"):
        if key in source:
            subset[key] = copy.deepcopy(source[key])
    if extractor.dropped:
        subset["x-extract-notes"] = sorted(set(extractor.dropped))
    return subset


class ExtractArgumentParser(argparse.ArgumentParser):
    """Reads arguments from @files, one a line; blank lines and # comments are skipped."""

    def convert_arg_line_to_args(self, arg_line: str) -> list[str]:
        line = arg_line.strip()
        return [] if not line or line.startswith("#") else [line]


def main(argv: list[str] | None = None) -> int:
    parser = ExtractArgumentParser(description=__doc__.splitlines()[0], fromfile_prefix_chars="@")
    parser.add_argument("source", type=Path, help="the full OpenAPI description (JSON)")
    parser.add_argument("out", type=Path, help="where to write the subset (JSON)")
    parser.add_argument("operations", nargs="+", help="'METHOD /path/template' or @FILE")
    args = parser.parse_args(argv)
    try:
        source = json.loads(args.source.read_text())
        subset = extract(source, args.operations)
    except (OSError, json.JSONDecodeError, ExtractError) as exc:
        print(f"extract_openapi: {exc}", file=sys.stderr)
        return 1
    args.out.write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n")
    counts = {section: len(items) for section, items in subset["components"].items()}
    print(f"{args.out}: {len(args.operations)} operations, components {counts}")
    for note in subset.get("x-extract-notes", []):
        print(f"  dropped {note} (it points outside the description)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
