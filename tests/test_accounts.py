"""Pure parts of hub accounts: names, hashes, requests, answers, and data on stdin."""

from __future__ import annotations

import json
import subprocess

import bcrypt
import pytest

from deploy.host import accounts
from deploy.ssh import script_with_input


@pytest.mark.parametrize("name", ["alice", "Alice", "bob-2", "o'neil", "<img>x"])
def test_hub_names_are_lower_cased(name: str) -> None:
    assert accounts.hub_name(name) == name.lower()


@pytest.mark.parametrize(
    "name", ["", "two words", "a,b", "a/b", "tab\there", "nul\x00", "x" * 129, "new\nline"]
)
def test_names_the_hub_refuses_are_refused_with_what_is_allowed(name: str) -> None:
    with pytest.raises(accounts.AccountError, match="without spaces, commas, slashes"):
        accounts.hub_name(name)


def test_each_name_once_in_order() -> None:
    assert accounts.hub_names(["Bob", "alice", "bob"]) == ["bob", "alice"]


def test_a_password_hash_is_what_nativeauthenticator_checks() -> None:
    hashed = accounts.password_hash("pale-otter-87-lantern").encode()
    # NativeAuthenticator's UserInfo.is_valid_password, exactly.
    assert hashed == bcrypt.hashpw(b"pale-otter-87-lantern", hashed)
    assert hashed != bcrypt.hashpw(b"another", hashed)


def test_seeded_passwords_are_unusable_and_all_different() -> None:
    request = accounts.seed_request(["alice", "bob"])
    hashes = [a["hash"] for a in request["accounts"]]
    assert [a["name"] for a in request["accounts"]] == ["alice", "bob"]
    assert len(set(hashes)) == 2
    for hashed in hashes:
        for guess in (b"", b"alice", b"password"):
            assert bcrypt.hashpw(guess, hashed.encode()) != hashed.encode()


def test_the_command_holds_no_value_from_anyone() -> None:
    request = accounts.password_request("alice", "pale-otter-87-lantern")
    for action in accounts.ACTIONS:
        text = accounts.command(action)
        assert "alice" not in text and request["hash"] not in text
    with pytest.raises(ValueError):
        accounts.command("drop")


def test_answers_are_read_from_the_last_json_line() -> None:
    stdout = 'warning: something\n{"database": true, "rows": [{"name": "erin"}]}\n'
    assert accounts.parse_answer(stdout)["rows"] == [{"name": "erin"}]
    assert accounts.parse_answer("Traceback ...\n") == {}
    assert accounts.parse_answer("{not json\n") == {}


def test_accounts_listing_is_parsed_and_split_into_waiting_and_approved() -> None:
    stdout = json.dumps(
        {
            "database": True,
            "rows": [
                {"name": "alice", "authorized": True, "email": None},
                {"name": "erin", "authorized": False, "email": "e@example.edu"},
                {"name": 7},
            ],
            "seeded": ["alice", 3],
        }
    )
    listed = accounts.parse_accounts(stdout)
    assert [r.name for r in listed.waiting] == ["erin"]
    assert [r.name for r in listed.approved] == ["alice"]
    assert listed.waiting[0].email == "e@example.edu"
    assert listed.seeded == {"alice"}
    assert accounts.parse_accounts('{"database": false}') == accounts.HubAccounts()


def test_data_after_a_script_is_read_by_it_and_never_run() -> None:
    script = "set -eu\ncat > /dev/null\necho read-it"
    data = "echo SHOULD-NOT-RUN\n"
    ran = subprocess.run(
        ["bash", "-s"], input=script_with_input(script, data), capture_output=True, text=True
    )
    assert ran.stdout == "read-it\n"
    # A script that reads nothing still does not run what follows it.
    ran = subprocess.run(
        ["bash", "-s"], input=script_with_input("true", data), capture_output=True, text=True
    )
    assert "SHOULD-NOT-RUN" not in ran.stdout and ran.returncode == 0


def test_the_common_passwords_are_nativeauthenticators_own_list() -> None:
    from tests.support.hub import HUB_VENV

    (installed,) = HUB_VENV.glob("lib/python3*/site-packages/nativeauthenticator/common-*.txt")
    assert accounts.COMMON_PASSWORDS_FILE.read_bytes() == installed.read_bytes()
    assert len(accounts.common_passwords()) > 9000


@pytest.mark.parametrize(
    ("password", "again", "why"),
    [
        ("pale-otter-87-lantern", "pale-otter-87-lanterm", "the two passwords differ"),
        ("short-pw1", "short-pw1", "shorter than 10 characters"),
        ("1234567890", "1234567890", "most common"),
        ("qwertyuiop", "qwertyuiop", "most common"),
    ],
)
def test_new_passwords_are_refused_with_the_rule_they_break(
    password: str, again: str, why: str
) -> None:
    with pytest.raises(accounts.AccountError, match=why) as refused:
        accounts.check_new_password(password, again)
    assert password not in str(refused.value)


@pytest.mark.parametrize("password", ["pale-otter-87-lantern", "otter-87-q"])
def test_a_good_new_password_passes(password: str) -> None:
    # Ten characters is long enough: the rule is "at least", not "more than".
    assert len("otter-87-q") == accounts.MIN_PASSWORD_LENGTH
    assert accounts.check_new_password(password, password) is None


def test_a_password_hash_is_redacted_wherever_it_would_be_shown() -> None:
    from deploy.redact import REDACTED, redact

    hashed = accounts.password_hash("pale-otter-87-lantern")
    assert redact(f"row: {hashed} end") == f"row: {REDACTED} end"
