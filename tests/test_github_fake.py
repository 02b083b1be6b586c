"""Tests of the fake GitHub, its OpenAPI checker, and the subset extractor."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from gidgethub import sansio

from scripts.extract_openapi import ExtractError, extract, main, parse_operation, resolve_pointer
from tests.fakes.github import SUBSET, FakeGitHub, Symlink, VirtualFile, blob_sha, sign
from tests.fakes.openapi_check import InvalidRequest, OpenAPIChecker, UnknownOperation
from tests.plugins.digitalocean_fake import openapi_validator
from tests.plugins.github_fake import COURSE_README, INSTALLATION_ID

DATA = Path(__file__).parent / "data"
GITHUB_SOURCE = DATA / "npm/node_modules/@octokit/openapi/generated/api.github.com.json"
DO_SUBSET = DATA / "digitalocean-openapi-subset.json"
# Each committed subset and the list of operations it was cut with.
SUBSETS = [
    (SUBSET, DATA / "github-operations.txt"),
    (DO_SUBSET, DATA / "digitalocean-operations.txt"),
]
REPO = "/repos/octo-org/physics101"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def token_for(session: aiohttp.ClientSession, fake: FakeGitHub) -> str:
    now = int(time.time())
    assertion = jwt.encode(
        {"iat": now - 30, "exp": now + 300, "iss": str(fake.app.id)},
        fake.app.private_key_pem,
        algorithm="RS256",
    )
    async with session.post(
        f"{fake.url}/app/installations/{INSTALLATION_ID}/access_tokens",
        headers={"Authorization": f"Bearer {assertion}"},
    ) as response:
        assert response.status == 201
        return (await response.json())["token"]


async def call(
    session: aiohttp.ClientSession,
    fake: FakeGitHub,
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    **headers: str,
) -> tuple[int, Any, Any]:
    if token:
        headers["Authorization"] = f"token {token}"
    async with session.request(
        method, fake.url + path, json=body, headers=headers, allow_redirects=False
    ) as response:
        text = await response.text()
        data = json.loads(text) if text and response.content_type == "application/json" else text
        return response.status, data, response.headers


# ----- validation -------------------------------------------------------------------------


async def test_the_fake_refuses_a_check_run_with_a_bogus_status(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    body = {"name": "classroom", "head_sha": "a" * 40, "status": "bogus"}
    status, data, _ = await call(session, github_fake, "POST", f"{REPO}/check-runs", token, body)
    assert status == 422
    assert "'bogus' is not one of" in data["message"]
    assert len(github_fake.validation_errors) == 1
    assert "checks/create" in github_fake.validation_errors[0]
    assert github_fake.check_runs == {}
    github_fake.validation_errors.clear()


async def test_an_unknown_operation_is_404_and_recorded(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    status, _, _ = await call(session, github_fake, "DELETE", REPO, token)
    assert status == 404
    assert github_fake.validation_errors == [
        "DELETE /repos/octo-org/physics101: no operation of the OpenAPI description matches"
        " (that path allows only: /repos/{owner}/{repo})"
    ]
    github_fake.validation_errors.clear()


def test_the_checker_reports_path_and_query_errors() -> None:
    checker = OpenAPIChecker(SUBSET)
    with pytest.raises(InvalidRequest, match="comment_id"):
        checker.check("POST", f"{REPO}/issues/comments/abc/reactions", body=b'{"content":"+1"}')
    with pytest.raises(InvalidRequest, match="'weird' is not one of"):
        checker.check("GET", f"{REPO}/issues", query={"state": "weird"})
    with pytest.raises(InvalidRequest, match="'title' is a required property"):
        checker.check("POST", f"{REPO}/issues", body=b"{}")
    with pytest.raises(UnknownOperation):
        checker.check("GET", "/gists")


def test_the_checker_lets_a_trailing_parameter_hold_slashes() -> None:
    checker = OpenAPIChecker(SUBSET)
    found = checker.match("GET", f"{REPO}/contents/docs/week%201/intro.ipynb")
    assert found.operation.operation_id == "repos/get-content"
    assert found.path_parameters["path"] == "docs/week 1/intro.ipynb"
    assert checker.match("GET", REPO).operation.operation_id == "repos/get"
    tree = checker.match("GET", f"{REPO}/git/trees/feature/x")
    assert tree.path_parameters["tree_sha"] == "feature/x"


def test_the_checker_prefers_literal_segments() -> None:
    checker = OpenAPIChecker(SUBSET)
    found = checker.match("POST", f"{REPO}/issues/comments/5/reactions")
    assert found.operation.operation_id == "reactions/create-for-issue-comment"
    assert checker.match("POST", f"{REPO}/issues/5/comments").path_parameters == {
        "owner": "octo-org",
        "repo": "physics101",
        "issue_number": "5",
    }


# ----- authentication ---------------------------------------------------------------------


async def test_wrong_credentials_are_401(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    status, _, _ = await call(session, github_fake, "GET", REPO, "ghs_not_a_token")
    assert status == 401
    status, _, _ = await call(session, github_fake, "GET", "/app", None)
    assert status == 401
    forged = jwt.encode({"iat": 1, "exp": 2, "iss": "1"}, "secret", algorithm="HS256")
    status, _, _ = await call(
        session, github_fake, "GET", "/app", None, Authorization=f"Bearer {forged}"
    )
    assert status == 401


async def test_an_invalidated_token_is_401(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    assert (await call(session, github_fake, "GET", REPO, token))[0] == 200
    github_fake.invalidate_token(token)
    assert (await call(session, github_fake, "GET", REPO, token))[0] == 401


async def test_a_repository_outside_the_installation_is_404(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    github_fake.add_repository("someone/else", {"README.md": b"x"})
    token = await token_for(session, github_fake)
    assert (await call(session, github_fake, "GET", "/repos/someone/else", token))[0] == 404


# ----- contents, check runs, issues, permissions -----------------------------------------


async def test_put_contents_needs_the_current_sha(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    path = f"{REPO}/contents/README.md"
    status, current, headers = await call(session, github_fake, "GET", path, token)
    assert status == 200
    assert base64.b64decode(current["content"]) == COURSE_README
    assert current["sha"] == blob_sha(COURSE_README)
    new = base64.b64encode(b"# Physics 101\n<!-- classroom-badges:start -->\n").decode()
    stale = {"message": "badges", "content": new, "sha": "0" * 40}
    assert (await call(session, github_fake, "PUT", path, token, stale))[0] == 409
    missing = {"message": "badges", "content": new}
    assert (await call(session, github_fake, "PUT", path, token, missing))[0] == 422
    fresh = {"message": "badges", "content": new, "sha": current["sha"]}
    status, answer, _ = await call(session, github_fake, "PUT", path, token, fresh)
    assert status == 200
    assert github_fake.files("octo-org/physics101")["README.md"].endswith(b"start -->\n")
    assert answer["commit"]["sha"] == github_fake.repositories["octo-org/physics101"].resolve(
        "main"
    )
    # The old ETag no longer matches: the next read gets the new file, not a 304.
    status, _, _ = await call(
        session, github_fake, "GET", path, token, **{"If-None-Match": headers["ETag"]}
    )
    assert status == 200


async def test_contents_of_a_folder_list_its_entries(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    github_fake.put_commit(
        "octo-org/physics101",
        {"binder/apt.txt": b"graphviz\n", "binder/x/y.txt": b"", "README.md": b""},
        branch="main",
    )
    token = await token_for(session, github_fake)
    status, listing, _ = await call(session, github_fake, "GET", f"{REPO}/contents/binder", token)
    assert status == 200
    assert [(e["name"], e["type"]) for e in listing] == [("apt.txt", "file"), ("x", "dir")]
    status, _, _ = await call(session, github_fake, "GET", f"{REPO}/contents/nope.txt", token)
    assert status == 404


async def test_check_runs_keep_their_history(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    create = {"name": "classroom", "head_sha": "d" * 40, "status": "in_progress"}
    status, run, _ = await call(session, github_fake, "POST", f"{REPO}/check-runs", token, create)
    assert status == 201
    done = {"conclusion": "success", "output": {"title": "Hub ready", "summary": "ok"}}
    url = f"{REPO}/check-runs/{run['id']}"
    status, updated, _ = await call(session, github_fake, "PATCH", url, token, done)
    assert updated["status"] == "completed"
    assert github_fake.check_run_history(run["id"]) == [create, done]
    status, fetched, _ = await call(session, github_fake, "GET", url, token)
    assert fetched["output"]["title"] == "Hub ready"


async def test_deployments_and_statuses(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    body = {"ref": "main", "environment": "classroom", "auto_merge": False, "required_contexts": []}
    status, deployment, _ = await call(
        session, github_fake, "POST", f"{REPO}/deployments", token, body
    )
    assert status == 201
    state = {"state": "success", "environment_url": "https://hub.example.edu"}
    url = f"{REPO}/deployments/{deployment['id']}/statuses"
    assert (await call(session, github_fake, "POST", url, token, state))[0] == 201
    assert github_fake.deployment_statuses[deployment["id"]][0]["environment_url"].startswith(
        "https://hub"
    )


async def test_issues_comments_and_reactions(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    issue_body = {"title": "Hub is down", "labels": ["classroom"]}
    status, issue, _ = await call(session, github_fake, "POST", f"{REPO}/issues", token, issue_body)
    assert (status, issue["number"]) == (201, 1)
    url = f"{REPO}/issues/1/comments"
    status, comment, _ = await call(session, github_fake, "POST", url, token, {"body": "still"})
    assert status == 201
    reaction_url = f"{REPO}/issues/comments/{comment['id']}/reactions"
    assert (await call(session, github_fake, "POST", reaction_url, token, {"content": "eyes"}))[
        0
    ] == 201
    _, listed, _ = await call(session, github_fake, "GET", f"{REPO}/issues?labels=classroom", token)
    assert [i["title"] for i in listed] == ["Hub is down"]
    closed = {"state": "closed"}
    assert (await call(session, github_fake, "PATCH", f"{REPO}/issues/1", token, closed))[0] == 200
    _, listed, _ = await call(session, github_fake, "GET", f"{REPO}/issues", token)
    assert listed == []
    assert github_fake.reactions[0]["content"] == "eyes"
    missing = f"{REPO}/issues/99/comments"
    assert (await call(session, github_fake, "POST", missing, token, {"body": "x"}))[0] == 404


async def test_collaborator_permission(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    _, alice, _ = await call(
        session, github_fake, "GET", f"{REPO}/collaborators/alice/permission", token
    )
    assert (alice["permission"], alice["role_name"]) == ("admin", "admin")
    status, _, _ = await call(
        session, github_fake, "GET", f"{REPO}/collaborators/mallory/permission", token
    )
    assert status == 404


async def test_git_trees_list_a_commit_as_github_does(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    github_fake.put_commit(
        "octo-org/physics101",
        {
            "README.md": COURSE_README,
            "binder/apt.txt": b"git\n",
            "data/big.csv": VirtualFile(10**9, "big"),
            "latest": Symlink("data/big.csv"),
        },
        branch="main",
    )
    status, tree, _ = await call(
        session, github_fake, "GET", f"{REPO}/git/trees/main?recursive=1", token
    )
    assert status == 200 and tree["truncated"] is False
    entries = {e["path"]: e for e in tree["tree"]}
    assert [e["path"] for e in tree["tree"]] == [
        "README.md",
        "binder",
        "binder/apt.txt",
        "data",
        "data/big.csv",
        "latest",
    ]
    assert entries["README.md"]["sha"] == blob_sha(COURSE_README)
    assert (entries["binder"]["type"], entries["binder"]["mode"]) == ("tree", "040000")
    assert entries["data/big.csv"]["size"] == 10**9
    assert entries["latest"]["mode"] == "120000"
    # Without ``recursive`` a tree lists its own entries only; a folder is a tree sha.
    _, root, _ = await call(session, github_fake, "GET", f"{REPO}/git/trees/{tree['sha']}", token)
    assert [e["path"] for e in root["tree"]] == ["README.md", "binder", "data", "latest"]
    _, binder, _ = await call(
        session, github_fake, "GET", f"{REPO}/git/trees/{entries['binder']['sha']}", token
    )
    assert [e["path"] for e in binder["tree"]] == ["apt.txt"]
    # The recorded byte count is the body sent, nowhere near the gigabyte listed.
    assert 0 < github_fake.requests[-1].sent_bytes < 2000


async def test_git_trees_truncate_above_the_limit(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    github_fake.put_commit(
        "octo-org/physics101", {f"f{i}.txt": b"x" for i in range(5)}, branch="main"
    )
    github_fake.tree_entry_limit = 3
    _, tree, _ = await call(
        session, github_fake, "GET", f"{REPO}/git/trees/main?recursive=1", token
    )
    assert tree["truncated"] is True and len(tree["tree"]) == 3
    status, _, _ = await call(session, github_fake, "GET", f"{REPO}/git/trees/{'0' * 40}", token)
    assert status == 404


async def test_git_blobs_by_sha_in_base64(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    sha = blob_sha(COURSE_README)
    status, blob, _ = await call(session, github_fake, "GET", f"{REPO}/git/blobs/{sha}", token)
    assert status == 200
    assert (blob["encoding"], blob["size"], blob["sha"]) == ("base64", len(COURSE_README), sha)
    assert base64.b64decode(blob["content"]) == COURSE_README
    assert github_fake.requests[-1].sent_bytes > len(COURSE_README)
    status, _, _ = await call(session, github_fake, "GET", f"{REPO}/git/blobs/{'1' * 40}", token)
    assert status == 404


async def test_queued_failures_and_request_records(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    token = await token_for(session, github_fake)
    github_fake.queue_secondary_rate_limit("repos/get", retry_after=3)
    status, data, headers = await call(session, github_fake, "GET", REPO, token)
    assert (status, headers["retry-after"]) == (403, "3")
    assert "secondary rate limit" in data["message"]
    assert (await call(session, github_fake, "GET", REPO, token))[0] == 200
    assert github_fake.count("repos/get") == 2


# ----- manifest flow and webhook signatures -------------------------------------------------


async def test_manifest_flow_for_an_organization(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    manifest = {"name": "Dept Hub", "redirect_url": "http://127.0.0.1:3000/setup/callback"}
    async with session.post(
        f"{github_fake.url}/organizations/physics-dept/settings/apps/new",
        data={"manifest": json.dumps(manifest)},
        allow_redirects=False,
    ) as response:
        assert response.status == 302
        assert response.headers["Location"].startswith("http://127.0.0.1:3000/setup/callback?code=")
    assert github_fake.manifests[0] == {"manifest": manifest, "organization": "physics-dept"}
    async with session.post(f"{github_fake.url}/settings/apps/new", data={}) as response:
        assert response.status == 400


def test_sign_matches_what_gidgethub_verifies() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    signature = sign("s3cret", body)
    assert signature.startswith("sha256=")
    sansio.validate_event(body, signature=signature, secret="s3cret")


# ----- the extractor ------------------------------------------------------------------------


def test_the_committed_subset_is_what_the_script_makes(tmp_path: Path) -> None:
    out = tmp_path / "subset.json"
    assert main([str(GITHUB_SOURCE), str(out), f"@{DATA / 'github-operations.txt'}"]) == 0
    assert json.loads(out.read_text()) == json.loads(SUBSET.read_text())


def synthetic_source() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "T", "version": "1"},
        "paths": {
            "/things/{id}": {
                "parameters": [{"$ref": "#/components/parameters/id"}],
                "post": {
                    "operationId": "things/post",
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/tree"}}
                        }
                    },
                    "responses": {"200": {"$ref": "#/paths/~1other/get/responses/200"}},
                },
            },
            "/other": {
                "get": {"responses": {"200": {"description": "ok"}}},
            },
            "/pets": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [{"$ref": "#/components/schemas/cat"}],
                                    "discriminator": {
                                        "propertyName": "kind",
                                        "mapping": {"cat": "models/pets.yml#/cat"},
                                    },
                                }
                            }
                        }
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            },
        },
        "components": {
            "parameters": {
                "id": {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
            },
            "schemas": {
                "tree": {
                    "type": "object",
                    "required": ["leaf"],
                    "properties": {
                        "leaf": {"$ref": "#/components/schemas/leaf"},
                        "children": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/tree"},
                        },
                    },
                },
                "leaf": {"type": "string", "enum": ["a", "b"]},
                "cat": {"type": "object", "properties": {"kind": {"type": "string"}}},
                "unused": {"type": "string"},
            },
        },
    }


def test_extract_copies_references_transitively_and_inlines_odd_ones() -> None:
    subset = extract(synthetic_source(), ["POST /things/{id}", "post /pets"])
    assert set(subset["components"]["schemas"]) == {"tree", "leaf", "cat"}
    assert set(subset["components"]["parameters"]) == {"id"}
    post = subset["paths"]["/things/{id}"]["post"]
    assert post["responses"]["200"] == {"description": "ok"}
    assert "/other" not in subset["paths"]
    pets = subset["paths"]["/pets"]["post"]["requestBody"]["content"]["application/json"]
    assert "discriminator" not in pets["schema"]
    assert subset["x-extract-notes"] == ["discriminator mapping to 'models/pets.yml#/cat'"]
    checker = OpenAPIChecker(subset)
    assert checker.check("POST", "/things/3", body=b'{"leaf": "a", "children": [{"leaf": "b"}]}')
    with pytest.raises(InvalidRequest, match="'c' is not one of"):
        checker.check("POST", "/things/3", body=b'{"leaf": "a", "children": [{"leaf": "c"}]}')


@pytest.mark.parametrize(
    ("operation", "message"),
    [("GET /things/{id}", "no such operation"), ("FETCH /x", "METHOD /path/template")],
)
def test_extract_names_a_bad_operation(operation: str, message: str) -> None:
    with pytest.raises(ExtractError, match=message):
        extract(synthetic_source(), [operation])


def listed_operations(operations_file: Path) -> set[tuple[str, str]]:
    lines = operations_file.read_text().splitlines()
    return {parse_operation(line) for line in lines if line.strip() and not line.startswith("#")}


def references(node: Any) -> list[str]:
    """Every ``$ref`` in an OpenAPI document, however deep."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in references(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in references(item)]
    return []


@pytest.mark.parametrize(("subset", "operations"), SUBSETS, ids=["github", "digitalocean"])
def test_a_committed_subset_holds_exactly_the_listed_operations(
    subset: Path, operations: Path
) -> None:
    document = json.loads(subset.read_text())
    held = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert held == listed_operations(operations)


@pytest.mark.parametrize(("subset", "operations"), SUBSETS, ids=["github", "digitalocean"])
def test_a_committed_subset_is_self_contained(subset: Path, operations: Path) -> None:
    # The fakes validate against the subset alone: every reference must resolve in it.
    # (DigitalOcean's description comes bundled, its schemas inlined: it has none.)
    document = json.loads(subset.read_text())
    for ref in sorted(set(references(document))):
        assert ref.startswith("#/components/"), ref
        resolve_pointer(document, ref)


def test_the_digitalocean_fakes_validator_checks_droplet_actions() -> None:
    # The validator do_fake uses, built from the committed subset.
    validate = openapi_validator()
    auth = {"Authorization": "Bearer dop_v1_" + "0" * 64}
    actions = "/v2/droplets/7/actions"
    resize = b'{"type": "resize", "size": "s-4vcpu-8gb", "disk": false}'
    assert validate("POST", actions, {}, auth, resize) == []
    for action in (b'{"type": "shutdown"}', b'{"type": "snapshot", "name": "week-1"}'):
        assert validate("POST", actions, {}, auth, action) == [], action
    (bogus,) = validate("POST", actions, {}, auth, b'{"type": "bogus"}')
    assert "dropletActions_post" in bogus
    (not_a_number,) = validate("POST", "/v2/droplets/seven/actions", {}, auth, resize)
    assert "droplet_id" in not_a_number
    (unknown,) = validate("DELETE", "/v2/sizes", {}, auth, b"")
    assert "DELETE /v2/sizes" in unknown


# -- the OAuth web flow and the user API --------------------------------------------------------


async def test_the_oauth_web_flow_as_github_documents_it(github_fake: FakeGitHub) -> None:
    app = github_fake.app
    app.callback_urls = ["http://127.0.0.1:3000/login/callback"]
    token_url = f"{github_fake.url}/login/oauth/access_token"
    json_accept = {"Accept": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def authorize(**query: str) -> aiohttp.ClientResponse:
            return await session.get(
                f"{github_fake.url}/login/oauth/authorize", params=query, allow_redirects=False
            )

        assert (await authorize(client_id="Iv1.wrong", state="s")).status == 404
        refused = await authorize(client_id=app.client_id, redirect_uri="http://evil.example/cb")
        assert refused.status == 400
        github_fake.validation_errors.clear()
        answer = await authorize(
            client_id=app.client_id, redirect_uri=app.callback_urls[0], state="xyz"
        )
        assert answer.status == 302
        location = answer.headers["Location"]
        assert location.startswith(app.callback_urls[0] + "?code=") and "state=xyz" in location
        code = location.split("code=")[1].split("&")[0]

        async def token(**form: str) -> dict[str, Any]:
            async with session.post(token_url, data=form, headers=json_accept) as response:
                assert response.status == 200
                return await response.json()

        secret = {"client_id": app.client_id, "client_secret": app.client_secret}
        wrong = await token(client_id=app.client_id, client_secret="nope", code=code)
        assert wrong["error"] == "incorrect_client_credentials"
        issued = await token(**secret, code=code)
        assert issued["token_type"] == "bearer" and issued["expires_in"] == 8 * 3600
        assert issued["access_token"].startswith("ghu_")
        assert issued["refresh_token"].startswith("ghr_")
        again = await token(**secret, code=code)
        assert again["error"] == "bad_verification_code"

        user_headers = {"Authorization": f"Bearer {issued['access_token']}"}
        async with session.get(f"{github_fake.url}/user", headers=user_headers) as user:
            assert (await user.json())["login"] == "alice"
        async with session.get(
            f"{github_fake.url}/user/installations", headers=user_headers
        ) as listing:
            assert [i["id"] for i in (await listing.json())["installations"]] == [INSTALLATION_ID]

        renewed = await token(
            **secret, grant_type="refresh_token", refresh_token=issued["refresh_token"]
        )
        assert renewed["access_token"] != issued["access_token"]
        reused = await token(
            **secret, grant_type="refresh_token", refresh_token=issued["refresh_token"]
        )
        assert reused["error"] == "bad_refresh_token"
        async with session.get(f"{github_fake.url}/user", headers=user_headers) as old:
            assert old.status == 401
        github_fake.revoke_user_tokens("alice")
        renewed_headers = {"Authorization": f"Bearer {renewed['access_token']}"}
        async with session.get(f"{github_fake.url}/user", headers=renewed_headers) as revoked:
            assert revoked.status == 401
    assert github_fake.oauth_count("refresh_token") == 2
