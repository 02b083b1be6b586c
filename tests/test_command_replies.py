"""Replies to /status, /help, an unknown command, and a command coalesced with a newer one."""

from __future__ import annotations

import re

import pytest

from bot.jobs import registry
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO

pytestmark = pytest.mark.sshd


async def deployed_with_issue(classroom, example) -> int:
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    return classroom.github.add_issue(COURSE_REPO, "Hub questions").number


def on_issue(example, number: int) -> dict:
    return {**example("issue_comment", "created")["issue"], "number": number, "pull_request": None}


def replies(classroom, number: int) -> list[str]:
    return [c["body"] for c in classroom.github.issues[(COURSE_REPO, number)].comments]


async def test_status_reports_the_server_and_the_hub(classroom, example):
    number = await deployed_with_issue(classroom, example)
    before = len(classroom.github.requests)
    await classroom.comment(example, "/status", issue=on_issue(example, number))
    await classroom.settle()
    [reply] = replies(classroom, number)
    assert reply.startswith("@alice ")
    assert "provider: ssh" in reply and "127.0.0.1" in reply
    assert "jupyterhub" in reply and "active" in reply
    assert "Hub is running" in reply
    reads = [
        r
        for r in classroom.github.requests[before:]
        if r.operation_id in ("git/get-tree", "git/get-blob")
    ]
    assert reads == []  # /status needs nothing from the repository


async def test_help_lists_every_command(classroom, example):
    number = await deployed_with_issue(classroom, example)
    await classroom.comment(example, "/help", issue=on_issue(example, number))
    await classroom.settle()
    [reply] = replies(classroom, number)
    # One table row per registry entry, in its order: its usage, summary and example.
    rows = [
        [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in reply.splitlines()
        if line.startswith("| `/")
    ]
    entries = registry.commands()
    assert [row[0] for row in rows] == [f"`{op.usage}`" for op in entries]
    assert [row[2] for row in rows] == [f"`{op.example}`" for op in entries]
    for row, op in zip(rows, entries, strict=True):
        assert row[1].startswith(op.summary), (op.name, row[1])


async def test_an_unknown_command_gets_a_hint(classroom, example):
    number = await deployed_with_issue(classroom, example)
    await classroom.comment(example, "/frobnicate now", issue=on_issue(example, number))
    await classroom.settle()
    [reply] = replies(classroom, number)
    assert "/help" in reply
    assert [r["content"] for r in classroom.github.reactions] == ["eyes", "confused"]


async def test_rebuild_says_students_files_are_kept(classroom, example):
    number = await deployed_with_issue(classroom, example)
    await classroom.comment(example, "/rebuild", issue=on_issue(example, number))
    await classroom.settle()
    [reply] = replies(classroom, number)
    assert "files" in reply and "kept" in reply
    bootstraps = classroom.target.calls("bootstrap")
    assert len(bootstraps) == 2  # installed once, upgraded in place once
    assert classroom.target.canary.intact()


async def test_a_second_command_while_one_is_queued_is_coalesced(classroom, example):
    number = await deployed_with_issue(classroom, example)
    runner = classroom.services.runner
    runner.pause()  # both comments arrive while the first is still queued
    try:
        await classroom.comment(example, "/restart", issue=on_issue(example, number))
        await classroom.comment(example, "/restart", issue=on_issue(example, number))
        await classroom.services.drain()
    finally:
        runner.resume()
    await classroom.settle()
    texts = replies(classroom, number)
    assert len(texts) == 2
    assert any("run once" in text for text in texts)
    restarts = [c for c in classroom.target.calls("systemctl") if c["argv"][:1] == ["restart"]]
    assert len(restarts) == 1
