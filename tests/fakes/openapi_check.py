"""Check HTTP requests against an OpenAPI description, for the fakes of GitHub and DigitalOcean.

Given a (subset) OpenAPI description, ``OpenAPIChecker.check`` finds the operation a
request is for and validates its path parameters, query, headers and JSON body with
openapi-core. It returns the operation's ``operationId`` or raises ``UnknownOperation``
(no such operation) or ``InvalidRequest`` (the request breaks the schema), each with a
message that says which operation and which part of the request is wrong.

Matching is done here rather than by openapi-core because real APIs accept a slash
inside a trailing parameter (GitHub's ``contents/{path}`` and ``git/trees/{tree_sha}``), which
a per-segment template match refuses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAMETER = re.compile(r"\{([^{}/]+)\}")


class OpenAPICheckError(Exception):
    """A request the description does not allow; ``str()`` says why."""

    status = 422

    def __init__(self, message: str, operation_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.operation_id = operation_id


class UnknownOperation(OpenAPICheckError):
    """No operation of the description matches the method and path."""

    status = 404


class InvalidRequest(OpenAPICheckError):
    """The operation exists but the request's parameters or body break its schema."""


@dataclass(frozen=True)
class Operation:
    method: str  # lower case, as in the description
    template: str
    operation_id: str
    strict: re.Pattern[str]  # every parameter is one path segment
    loose: re.Pattern[str] | None  # a trailing parameter may hold slashes


@dataclass(frozen=True)
class Match:
    operation: Operation
    path_parameters: dict[str, str]


def _template_regex(template: str, *, loose_tail: bool) -> re.Pattern[str]:
    pattern = ""
    position = 0
    found = list(_PARAMETER.finditer(template))
    for index, parameter in enumerate(found):
        pattern += re.escape(template[position : parameter.start()])
        is_tail = index == len(found) - 1 and parameter.end() == len(template)
        body = ".+" if loose_tail and is_tail else "[^/]+"
        pattern += f"(?P<p{index}>{body})"
        position = parameter.end()
    pattern += re.escape(template[position:])
    return re.compile(pattern)


@dataclass(frozen=True)
class _Request:
    """What openapi-core's ``Request`` protocol asks of a request, with the match done."""

    host_url: str
    path: str
    path_pattern: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=RequestParameters)


def _describe(error: BaseException) -> str:
    """openapi-core's error with its causes, down to the JSON Schema messages."""
    parts = [str(error)]
    cause = error.__cause__
    while cause is not None:
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            for schema_error in schema_errors:
                where = "/".join(str(p) for p in schema_error.absolute_path)
                parts.append(f"{where or '(root)'}: {schema_error.message}")
        else:
            parts.append(str(cause))
        cause = cause.__cause__
    return "; ".join(p for p in parts if p)


class OpenAPIChecker:
    """Validates requests against one OpenAPI description (a dict or a JSON file)."""

    def __init__(
        self, description: Mapping[str, Any] | Path | str, *, check_description: bool = True
    ) -> None:
        """``check_description`` False skips validating the description itself: Kubernetes'
        gives ``default: {}`` beside references to schemas with required properties, which
        the OpenAPI 3.0 validator refuses though every request is still checked as usual."""
        if isinstance(description, str | Path):
            description = json.loads(Path(description).read_text())
        spec = dict(description)
        # The fakes serve on loopback at a random port: match paths whatever the host.
        server_path = ""
        servers = spec.get("servers") or []
        if servers:
            url = str(servers[0].get("url", ""))
            server_path = re.sub(r"^[a-z]+://[^/]*", "", url).rstrip("/")
        self.base_path = server_path
        spec["servers"] = [{"url": server_path or "/"}]
        # Kubernetes' PATCH bodies are JSON under their own media types.
        json_types = ("*/*", "application/merge-patch+json", "application/json-patch+json")
        config = (
            None
            if check_description
            else Config(
                spec_validator_cls=None,
                extra_media_type_deserializers=dict.fromkeys(json_types, json.loads),
            )
        )
        self._api = OpenAPI.from_dict(spec, config=config)
        self.operations: list[Operation] = []
        for template, item in spec.get("paths", {}).items():
            for method, operation in item.items():
                if method not in HTTP_METHODS:
                    continue
                loose = _template_regex(template, loose_tail=True)
                strict = _template_regex(template, loose_tail=False)
                self.operations.append(
                    Operation(
                        method=method,
                        template=template,
                        operation_id=operation.get("operationId", f"{method} {template}"),
                        strict=strict,
                        loose=loose if loose.pattern != strict.pattern else None,
                    )
                )
        # Concrete templates first: "/issues/comments/{id}" must win over "/issues/{number}".
        self.operations.sort(key=lambda op: (len(_PARAMETER.findall(op.template)), op.template))
        self.by_id = {op.operation_id: op for op in self.operations}

    def match(self, method: str, path: str) -> Match:
        """The operation for ``method`` and ``path`` (raw, percent-encoded) or UnknownOperation."""
        method = method.lower()
        if self.base_path and path.startswith(self.base_path):
            path = path[len(self.base_path) :] or "/"
        found = self._find(method, path, "strict") or self._find(method, path, "loose")
        if found is not None:
            return found
        known = sorted({op.template for op in self.operations if op.strict.fullmatch(path)})
        hint = f" (that path allows only: {', '.join(known)})" if known else ""
        raise UnknownOperation(
            f"{method.upper()} {path}: no operation of the OpenAPI description matches{hint}"
        )

    def _find(self, method: str, path: str, attempt: str) -> Match | None:
        candidates = []
        for operation in self.operations:
            regex = getattr(operation, attempt)
            if operation.method != method or regex is None:
                continue
            found = regex.fullmatch(path)
            if found:
                names = _PARAMETER.findall(operation.template)
                values = [unquote(found.group(f"p{i}")) for i in range(len(names))]
                candidates.append(Match(operation, dict(zip(names, values, strict=True))))
        if not candidates:
            return None
        # The template with the most literal text is the most specific: a slash-holding tail
        # must not let "/repos/{owner}/{repo}" swallow "/repos/o/r/contents/a/b".
        return max(candidates, key=lambda m: len(_PARAMETER.sub("", m.operation.template)))

    def check(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> str:
        """Validate one request and return its operationId; raise OpenAPICheckError if invalid."""
        found = self.match(method, path)
        operation = found.operation
        query_items = list(query.items()) if isinstance(query, Mapping) else list(query)
        header_items = dict(headers or {})
        if content_type is None:
            content_type = header_items.get("Content-Type", header_items.get("content-type", ""))
        content_type = content_type.split(";")[0].strip() or "application/json"
        request = _Request(
            host_url="http://fake.invalid",
            path=self.base_path + path,
            path_pattern=self.base_path + operation.template,
            method=operation.method,
            body=body or None,
            content_type=content_type,
            parameters=RequestParameters(
                path=found.path_parameters,
                query=ImmutableMultiDict(query_items),
                header=Headers(header_items),
            ),
        )
        result = self._api.unmarshal_request(request)
        if result.errors:
            reasons = "; ".join(_describe(error) for error in result.errors)
            raise InvalidRequest(
                f"{method.upper()} {path} ({operation.operation_id}): {reasons}",
                operation.operation_id,
            )
        return operation.operation_id
