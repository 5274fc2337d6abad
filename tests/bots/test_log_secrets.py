"""The `chatscribe` entry point registers every configured secret with the log redactor."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatscribe.bots import cli

SECRETS = {
    "CHATSCRIBE_API_KEYS": "first-api-key-0001,second-api-key-0002",
    "CHATSCRIBE_BROKER_URL": "redis://:broker-pass-7f3a9c@127.0.0.1:6390/0",
    "TELEGRAM_BOT_TOKEN": "telegram-token-not-in-its-usual-shape",
    "TELEGRAM_WEBHOOK_SECRET": "webhook-secret-3b1e",
    "DISCORD_BOT_TOKEN": "MTA5.discord-token.Gx9abc",
    "SLACK_BOT_TOKEN": "slack-bot-token-unshaped-42",
    "SLACK_SIGNING_SECRET": "8f14e45fceea167a5a36dedd4bea2543",
    "SLACK_APP_TOKEN": "slack-app-token-unshaped-43",
}
LOGGED = ["first-api-key-0001", "second-api-key-0002", "broker-pass-7f3a9c", SECRETS["CHATSCRIBE_BROKER_URL"],
          *list(SECRETS.values())[2:]]


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CHATSCRIBE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TELEGRAM_WEBHOOK_URL", "https://bot.example/telegram/webhook")
    root = logging.getLogger()
    handlers, level, umask = root.handlers[:], root.level, os.umask(0o022)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    os.umask(umask)


@pytest.mark.parametrize(("command", "fmt"), [(["run"], "text"), (["run"], "json"), (["worker"], "json")])
def test_every_configured_secret_is_redacted_in_the_log(
    environment: None, command: list[str], fmt: str, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CHATSCRIBE_LOG_FORMAT", fmt)
    seen_umask: list[int] = []

    async def log_them(args: object, settings: object) -> int:
        # What a library does when it logs a URL, a header or an exception carrying a secret.
        seen_umask.append(os.umask(0o077))
        log = logging.getLogger("chatscribe.bots.test")
        for secret in LOGGED:
            log.warning("request failed: Authorization=%s", secret)
        try:
            raise RuntimeError(f"connect to {SECRETS['CHATSCRIBE_BROKER_URL']} failed")
        except RuntimeError:
            log.exception("broker")
        return 0

    monkeypatch.setattr(cli, "_dispatch", log_them)
    with pytest.raises(SystemExit) as exited:
        cli.main(command)
    assert exited.value.code == 0
    err = capfd.readouterr().err
    assert err.count("request failed") == len(LOGGED)
    for secret in LOGGED:
        assert secret not in err, secret
    assert "[redacted]" in err
    assert seen_umask == [0o077]  # set before anything is written
