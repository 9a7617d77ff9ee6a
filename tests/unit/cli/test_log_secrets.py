"""No secret is ever logged: the JSON (and console) logs blank private keys, URL passwords,
password lines and secret-named fields wherever they appear.  The seed command's real JSON
log is checked against the real private key it generated."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from imagefactory.log import configure_logging, redact

REPO = Path(__file__).resolve().parents[3]
KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"


def logged(capsys: pytest.CaptureFixture[str], json_lines: bool, **fields: object) -> str:
    configure_logging(1, json_lines=json_lines)
    structlog.get_logger("test").info("event", **fields)
    try:
        raise RuntimeError(f"failed with password: hunter2 and {KEY}")
    except RuntimeError:
        structlog.get_logger("test").exception("boom")
    logging.getLogger("urllib3").warning("retrying https://user:hunter2@mirror/x")
    return capsys.readouterr().err


@pytest.mark.parametrize("json_lines", [True, False])
def test_secrets_never_reach_the_log(capsys: pytest.CaptureFixture[str], json_lines: bool) -> None:
    out = logged(
        capsys,
        json_lines,
        url="https://user:hunter2@mirror.example/debian",
        output=f"cloud-init said\n  password: hunter2\n{KEY}done",
        password="hunter2",
        api_token="hunter2",
        argv=["ssh", "-i", "key", "http://u:hunter2@h/"],
        nested={"private_key": KEY, "ok": "fine"},
    )
    assert "hunter2" not in out and BODY not in out
    assert "user:***@mirror.example" in out and "fine" in out
    if json_lines:
        assert all(json.loads(line) for line in out.splitlines())


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_a_private_key_anywhere_in_a_text_is_blanked(before: str, after: str) -> None:
    assert BODY not in redact(before + KEY + after)
    assert BODY not in redact(before + KEY[:-40])  # cut short: blanked to the end


def test_the_seed_commands_json_log_carries_no_private_key(tmp_path: Path) -> None:
    out = tmp_path / "seed"
    proc = subprocess.run(
        [sys.executable, "-m", "imagefactory", "-vv", "--log-format", "json", "seed",
         "debian13", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "IMAGEFACTORY_STATE": str(tmp_path / "state")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    private = (out / "ssh" / "id_ed25519").read_text()
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert any(line["event"] == "seed.written" for line in lines)
    body = private.splitlines()[1]
    assert body not in proc.stderr and body not in proc.stdout
