"""Settings: read from the environment and .env; each bad value is one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings, write_env

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_without_anything(tmp_path):
    s = load_settings({}, env_file=tmp_path / ".env")
    assert (s.host, s.port) == ("127.0.0.1", 3000)
    assert s.github_api_url == "https://api.github.com"
    assert s.github_url == "https://github.com"
    assert not s.registered


def test_the_relay_channel_and_the_course_token_rule(tmp_path):
    s = load_settings(
        {"WEBHOOK_PROXY_URL": "https://smee.io/AbCd1234", "BOT_REQUIRE_COURSE_TOKEN": "1"},
        env_file=tmp_path / ".env",
    )
    assert s.webhook_proxy_url == "https://smee.io/AbCd1234"
    assert s.require_course_token
    plain = load_settings({"BOT_REQUIRE_COURSE_TOKEN": "0"}, env_file=tmp_path / ".env")
    assert plain.webhook_proxy_url is None and not plain.require_course_token


def test_env_wins_over_dotenv(tmp_path):
    (tmp_path / ".env").write_text("PORT=4000\nHOST=0.0.0.0\n")
    s = load_settings({"PORT": "5000"}, env_file=tmp_path / ".env")
    assert (s.host, s.port) == ("0.0.0.0", 5000)


def test_private_key_with_escaped_newlines(tmp_path, app_private_key):
    escaped = app_private_key.replace("\n", "\\n")
    s = load_settings(
        {"GITHUB_APP_ID": "7", "GITHUB_PRIVATE_KEY": escaped, "GITHUB_WEBHOOK_SECRET": "abcdefgh"},
        env_file=tmp_path / ".env",
    )
    assert s.registered and s.private_key.startswith("-----BEGIN")


def test_private_key_from_a_path(tmp_path, app_private_key):
    key = tmp_path / "key.pem"
    key.write_text(app_private_key)
    s = load_settings(
        {
            "GITHUB_APP_ID": "7",
            "GITHUB_PRIVATE_KEY_PATH": str(key),
            "GITHUB_WEBHOOK_SECRET": "abcdefgh",
        },
        env_file=tmp_path / ".env",
    )
    assert s.private_key.strip() == app_private_key.strip()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"GITHUB_APP_ID": "twelve"}, "GITHUB_APP_ID"),
        ({"GITHUB_APP_ID": "1", "GITHUB_PRIVATE_KEY": "not a pem"}, "GITHUB_PRIVATE_KEY"),
        ({"GITHUB_APP_ID": "1"}, "GITHUB_PRIVATE_KEY"),
        (
            {"GITHUB_APP_ID": "1", "GITHUB_PRIVATE_KEY_PATH": "/nonexistent/key.pem"},
            "GITHUB_PRIVATE_KEY_PATH",
        ),
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"GITHUB_API_URL": "ftp://x"}, "GITHUB_API_URL"),
        ({"BOT_PUBLIC_URL": "not a url"}, "BOT_PUBLIC_URL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"WEBHOOK_PROXY_URL": "smee.io/abc"}, "WEBHOOK_PROXY_URL"),
        ({"BOT_REQUIRE_COURSE_TOKEN": "yes"}, "BOT_REQUIRE_COURSE_TOKEN"),
    ],
)
def test_each_bad_value_names_its_variable(tmp_path, env, variable):
    with pytest.raises(SettingsError) as info:
        load_settings(env, env_file=tmp_path / ".env")
    assert str(info.value).startswith(variable + ":")
    assert "\n" not in str(info.value)


def test_a_webhook_secret_is_required_once_registered(tmp_path, app_private_key):
    with pytest.raises(SettingsError, match="GITHUB_WEBHOOK_SECRET"):
        load_settings(
            {"GITHUB_APP_ID": "1", "GITHUB_PRIVATE_KEY": app_private_key},
            env_file=tmp_path / ".env",
        )


def test_write_env_merges_and_is_private(tmp_path, app_private_key):
    path = tmp_path / ".env"
    path.write_text("PORT=4001\nGITHUB_URL=https://ghe.example.edu\n")
    write_env(
        path,
        {
            "GITHUB_APP_ID": "9",
            "GITHUB_PRIVATE_KEY": app_private_key,
            "GITHUB_WEBHOOK_SECRET": 'q"uo\\te',
        },
    )
    assert path.stat().st_mode & 0o777 == 0o600
    s = load_settings({}, env_file=path)
    assert s.port == 4001 and s.github_url == "https://ghe.example.edu"
    assert s.app_id == 9 and s.webhook_secret == 'q"uo\\te'
    assert s.private_key.strip() == app_private_key.strip()


def test_secrets_stay_out_of_repr(tmp_path, app_private_key):
    s = load_settings(
        {
            "GITHUB_APP_ID": "1",
            "GITHUB_PRIVATE_KEY": app_private_key,
            "GITHUB_WEBHOOK_SECRET": "hush-hush-secret",
            "DIGITALOCEAN_ACCESS_TOKEN": "tok-123456789",
        },
        env_file=tmp_path / ".env",
    )
    text = repr(s)
    assert (
        "hush-hush-secret" not in text and "PRIVATE KEY" not in text and "tok-123456789" not in text
    )


def test_start_up_with_a_bad_value_prints_one_line_and_no_traceback(tmp_path):
    env = {**os.environ, "GITHUB_APP_ID": "abc", "BOT_ENV_FILE": str(tmp_path / ".env")}
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: GITHUB_APP_ID: 'abc' is not a number"


def test_help_names_the_flags():
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "--host" in done.stdout and "--port" in done.stdout
