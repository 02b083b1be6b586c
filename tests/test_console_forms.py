"""The console's operation forms from the registry's grammars, and the one admin rule:
pure code, no service."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.jobs import registry
from bot.jobs.registry import ADMIN, WRITE, Button, CommandError, Flag, Option, Positional
from bot.web import access, forms
from deploy.course.validate import Invalid
from deploy.model import OperationResult


@pytest.fixture
def scratch_registry():
    registry.operations()
    saved = dict(registry.OPERATIONS)
    yield
    registry.OPERATIONS.clear()
    registry.OPERATIONS.update(saved)


def test_every_button_entry_gets_a_form_more_than_githubs_three():
    views = [forms.form_view(op) for op in registry.buttons()]
    names = [view.name for view in views]
    assert len(views) > registry.MAX_CHECK_RUN_BUTTONS
    for name in ("status", "plan", "rebuild", "resize", "restart", "snapshot", "backup"):
        assert name in names
    assert {"release", "collect", "return"} <= {v.name for v in views if v.section == "assignments"}


@dataclass(frozen=True)
class GrowArgs:
    size: str
    student: str | None = None
    quick: bool = False


async def _grow(op, args) -> OperationResult:
    return OperationResult("success", "", "")


def test_an_entry_with_arguments_gets_its_fields_from_its_grammar(scratch_registry):
    registry.operation(
        "grow",
        summary="Grow.",
        grammar=(
            Positional("size", parse=registry.parse_size_slug),
            Option("student", "--student", parse=registry.parse_hub_user),
            Flag("quick", "--quick", help="Skip the snapshot"),
        ),
        args=GrowArgs,
        button=Button("Grow", "Grow the droplet"),
    )(_grow)
    op = registry.get("grow")
    plain = forms.form_view(op)
    size, student, quick = plain.fields
    assert (size.name, size.kind, size.required) == ("size", "text", True)
    assert size.pattern == registry.parse_size_slug.pattern
    assert size.help == registry.parse_size_slug.help and size.label == "Size"
    assert (student.kind, student.required, student.label) == ("text", False, "Student")
    assert student.pattern == registry.parse_hub_user.pattern
    assert (quick.kind, quick.label) == ("checkbox", "Skip the snapshot")
    # With the sizes the console knows, the size is a picker of them.
    offered = [forms.Choice("s-1vcpu-1gb", "small"), forms.Choice("s-2vcpu-4gb", "medium")]
    picked = forms.form_view(op, {"sizes": offered}, {"sizes": "s-2vcpu-4gb"})
    assert picked.fields[0].kind == "select" and picked.fields[0].choices == tuple(offered)
    assert picked.fields[0].selected == "s-2vcpu-4gb"

    words, args = forms.parse_form(op, {"size": "s-2vcpu-4gb", "student": "Ada", "quick": "on"})
    assert words == ["s-2vcpu-4gb", "--student", "Ada", "--quick"]
    assert args == GrowArgs("s-2vcpu-4gb", "ada", True)
    assert forms.parse_form(op, {"size": "s-2vcpu-4gb"})[1] == GrowArgs("s-2vcpu-4gb")


@pytest.mark.parametrize(
    ("form", "field", "allowed"),
    [
        ({"size": "s-4vcpu-8gb; reboot"}, "Size:", "lower-case letters and digits"),
        ({"size": "S-4VCPU"}, "Size:", "like `s-4vcpu-8gb`"),
        ({"size": "--disk"}, "Size:", "not an option"),
        ({"nodes": "20:2"}, "Nodes:", "MIN <= MAX"),
        ({"size": "s" * 300}, "Size:", "at most 200 characters"),
    ],
)
def test_a_bad_field_is_named_with_what_is_allowed(form, field, allowed):
    op = registry.get("resize")
    with pytest.raises(forms.FieldError) as caught:
        forms.parse_form(op, form)
    assert str(caught.value).startswith(field) and allowed in str(caught.value)


def test_fields_that_fit_no_use_of_the_command_are_refused_by_its_grammar():
    with pytest.raises(CommandError, match="needs a size slug, or `--nodes MIN:MAX`"):
        forms.parse_form(registry.get("resize"), {"disk": "on"})


KINDS = [
    registry.parse_size_slug,
    registry.parse_hub_user,
    registry.parse_snapshot_name,
    registry.parse_node_range,
    registry.get("release").grammar[0].parse,
]


def accepts(kind: registry.ArgKind, word: str) -> bool:
    try:
        kind(word)
    except (Invalid, ValueError):
        return False
    return True


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.noun)
@given(word=st.text(alphabet="abcxyzAZ019-_.:; /", max_size=70))
def test_a_fields_pattern_never_refuses_what_the_grammar_accepts(kind, word):
    assert kind.pattern, kind.noun
    # Known answers first, so both outcomes are seen to run.
    assert not re.fullmatch(kind.pattern, "a b") and not accepts(kind, "a b")
    if accepts(kind, word):
        assert re.fullmatch(kind.pattern, word), (kind.noun, word)


# ---- one admin rule ---------------------------------------------------------------------

ROLES = st.sampled_from(["admin", "maintain", "write", "triage", "read", "none", "custom-ta"])
PERMISSIONS = st.dictionaries(
    st.sampled_from(["admin", "maintain", "push", "triage", "pull"]),
    st.one_of(st.booleans(), st.none(), st.just("true")),
)
PAYLOADS = st.one_of(
    st.none(),
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "role_name": st.one_of(ROLES, st.none(), st.integers()),
            "permission": st.one_of(st.sampled_from(["admin", "write", "read", "none"]), st.none()),
            "user": st.one_of(
                st.none(),
                st.just("octocat"),
                st.fixed_dictionaries(
                    {}, optional={"permissions": st.one_of(PERMISSIONS, st.none())}
                ),
            ),
        },
    ),
)


@given(payload=PAYLOADS)
def test_the_console_and_the_jobs_ask_one_admin_rule(payload):
    # The console's check (course pages, admin-only forms) and the job's (registry) agree.
    assert access.is_admin(payload) == registry.has_role(ADMIN, payload)
    assert registry.may_run(payload) == registry.has_role(WRITE, payload)
    # Admin implies write, on every payload.
    assert not access.is_admin(payload) or registry.may_run(payload)


@pytest.mark.parametrize(
    ("payload", "admin"),
    [
        ({"role_name": "admin", "permission": "admin"}, True),
        # A base role named by role_name decides, whatever the booleans say.
        (
            {"role_name": "write", "permission": "write", "user": {"permissions": {"admin": True}}},
            False,
        ),
        ({"role_name": "maintain", "permission": "admin"}, False),
        # A custom role keeps its base role's powers, read from the booleans.
        (
            {
                "role_name": "custom-ta",
                "permission": "write",
                "user": {"permissions": {"admin": True}},
            },
            True,
        ),
        (
            {
                "role_name": "custom-ta",
                "permission": "admin",
                "user": {"permissions": {"admin": False}},
            },
            False,
        ),
        ({"permission": "admin"}, True),
        (None, False),
    ],
)
def test_the_admin_rule_on_the_payloads_that_used_to_disagree(payload, admin):
    assert access.is_admin(payload) is admin
    assert registry.has_role(ADMIN, payload) is admin
