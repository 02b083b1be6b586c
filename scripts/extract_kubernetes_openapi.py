"""Cut the subset of Kubernetes' OpenAPI v3 description the service uses.

    python scripts/extract_kubernetes_openapi.py SPEC_DIR OUT.json @OPERATIONS_FILE

(OPERATIONS_FILE: tests/data/kubernetes-operations.txt.)

SPEC_DIR holds Kubernetes' per-group OpenAPI v3 files as ``kubernetes/kubernetes`` keeps
them in ``api/openapi-spec/v3/`` (``api__v1_openapi.json``, ``apis__batch__v1_openapi.json``,
``apis__rbac.authorization.k8s.io__v1_openapi.json``, ``apis__apps__v1_openapi.json``; in
kubectl-validate's copy ``api/v1.json``, ``apis/batch/v1.json`` and so on). Each file is
self-contained; they are merged (paths and components) and cut with
``scripts/extract_openapi.py``'s ``extract``.

The subset in tests/data was cut from release 1.33 (DigitalOcean Kubernetes offers 1.33):
the files of ``kubernetes/kubernetes`` branch ``release-1.33``, ``api/openapi-spec/v3/``,
as ``kubernetes-sigs/kubectl-validate`` keeps them unchanged in
``pkg/openapiclient/builtins/1.33/`` (commit a97ccfaca20b164819afdae780392496f6ed6bbd).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from extract_openapi import ExtractArgumentParser, ExtractError, extract

GROUP_FILES = (
    "api__v1_openapi.json",
    "apis__batch__v1_openapi.json",
    "apis__rbac.authorization.k8s.io__v1_openapi.json",
    "apis__apps__v1_openapi.json",
)
SOURCE = "kubernetes/kubernetes release-1.33 api/openapi-spec/v3"


def merged_description(folder: Path) -> dict:
    """The group files of ``folder`` as one description."""
    merged: dict = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33"}}
    merged["paths"], merged["components"] = {}, {"schemas": {}, "securitySchemes": {}}
    for name in GROUP_FILES:
        part = json.loads((folder / name).read_text())
        merged["paths"].update(part.get("paths", {}))
        for section, items in part.get("components", {}).items():
            merged["components"].setdefault(section, {}).update(items)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = ExtractArgumentParser(description=__doc__.splitlines()[0], fromfile_prefix_chars="@")
    parser.add_argument("folder", type=Path, help="Kubernetes' api/openapi-spec/v3 folder")
    parser.add_argument("out", type=Path, help="where to write the subset (JSON)")
    parser.add_argument("operations", nargs="+", help="'METHOD /path/template' or @FILE")
    args = parser.parse_args(argv)
    try:
        subset = extract(merged_description(args.folder), args.operations)
    except (OSError, json.JSONDecodeError, ExtractError) as exc:
        print(f"extract_kubernetes_openapi: {exc}", file=sys.stderr)
        return 1
    subset["info"]["x-source"] = SOURCE
    args.out.write_text(json.dumps(subset, indent=1) + "\n")
    print(f"{args.out}: {len(args.operations)} operations, {len(subset['components'])} sections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
