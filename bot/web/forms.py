"""The console's operation forms, made from each registry entry's grammar: one field per
argument (its pattern, help and choices from the argument's kind), and the way back, a
submitted form to the words a slash command would carry, parsed by the same grammar.

Nothing here knows a particular operation: a new entry with a button gets its form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.jobs.registry import (
    ArgKind,
    Flag,
    Operation,
    Option,
    Positional,
    Words,
)
from deploy.course.validate import Invalid

MAX_FIELD = 200  # a form field longer than any argument is refused before parsing


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class FieldView:
    """One form field: ``kind`` is ``checkbox``, ``select`` or ``text``."""

    name: str
    id: str
    label: str
    kind: str
    required: bool = False
    pattern: str = ""
    help: str = ""
    choices: tuple[Choice, ...] = ()
    selected: str = ""


@dataclass(frozen=True)
class FormView:
    name: str
    label: str
    description: str
    section: str
    fields: tuple[FieldView, ...] = field(default_factory=tuple)


class FieldError(ValueError):
    """A form field that cannot be used; ``str()`` names the field and what is allowed."""

    def __init__(self, label: str, problem: str) -> None:
        super().__init__(f"{label}: {problem}")
        self.label = label


def field_label(part: Positional | Words | Flag | Option) -> str:
    """What the form calls a part: a positional by its kind (Size, Assignment), an option
    by its name (Student, Nodes), a switch by its help."""
    if isinstance(part, Flag):
        return part.help or part.flag
    word = part.name if isinstance(part, Option) else part.parse.noun
    return word[:1].upper() + word[1:]


def _field(
    op: Operation,
    part: Positional | Words | Flag | Option,
    choices: Mapping[str, Sequence[Choice]],
    selected: Mapping[str, str],
) -> FieldView:
    ident = f"{op.name}-{part.name}"
    if isinstance(part, Flag):
        return FieldView(part.name, ident, field_label(part), "checkbox", help=part.flag)
    kind: ArgKind = part.parse
    offered = tuple(choices.get(kind.choices, ())) if kind.choices else ()
    required = isinstance(part, Positional) and part.required
    required = required or (isinstance(part, Words) and part.minimum > 0)
    if offered:
        return FieldView(
            part.name,
            ident,
            field_label(part),
            "select",
            required=required,
            help=kind.help,
            choices=offered if required else (Choice("", "—"), *offered),
            selected=selected.get(kind.choices, ""),
        )
    return FieldView(
        part.name,
        ident,
        field_label(part),
        "text",
        required=required,
        # Several words go in one field: the pattern is for one.
        pattern="" if isinstance(part, Words) else kind.pattern,
        help=kind.help,
    )


def form_view(
    op: Operation,
    choices: Mapping[str, Sequence[Choice]] | None = None,
    selected: Mapping[str, str] | None = None,
) -> FormView:
    """The form for ``op``'s button: a field per part of its grammar."""
    assert op.button is not None
    return FormView(
        op.name,
        op.button.label,
        op.button.description,
        op.button.section,
        tuple(_field(op, part, choices or {}, selected or {}) for part in op.grammar),
    )


def form_words(op: Operation, form: Mapping[str, Any]) -> list[str]:
    """The words a submitted form stands for, each field checked by its kind first, so a
    bad one is named; the words are then parsed by the grammar like a slash command's."""
    words: list[str] = []
    for part in op.grammar:
        label = field_label(part)
        raw = form.get(part.name)
        value = raw.strip() if isinstance(raw, str) else ""
        if len(value) > MAX_FIELD:
            raise FieldError(label, f"at most {MAX_FIELD} characters")
        if isinstance(part, Flag):
            if value:
                words.append(part.flag)
            continue
        if not value:
            continue
        given = value.split() if isinstance(part, Words) else [value]
        for word in given:
            if word.startswith("--"):
                raise FieldError(label, f"{part.parse.what}, not an option.")
            try:
                part.parse(word)
            except (Invalid, ValueError) as exc:
                raise FieldError(label, str(exc)) from None
        if isinstance(part, Option):
            words.append(part.flag)
        words.extend(given)
    return words


def parse_form(op: Operation, form: Mapping[str, Any]) -> tuple[list[str], Any]:
    """The words and the typed arguments of a submitted form; raises ``FieldError``, or
    ``bot.jobs.registry.CommandError`` for arguments that fit no use of the command."""
    words = form_words(op, form)
    return words, op.parse(words)
