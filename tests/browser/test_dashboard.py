"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the real
stack: a user registers and signs in, creates a server and a key, an agent reports with it, the
chart moves and a log line arrives, an alert fires and is acknowledged, a notification channel
is created and its signed test message arrives, an allowed command runs, and revoking the key
takes the server offline. The scenario is `dashboard.test.mjs` (node's test
runner); every step saves a screenshot under build/browser/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.conftest import ARTIFACTS, CHROMIUM, ROOT, Stack

SCENARIO = Path(__file__).with_name("dashboard.test.mjs")
STEPS = [
    "01-signed-in",
    "02-key",
    "03-metrics",
    "04-logs",
    "05-backtest",
    "06-live-alert",
    "07-acknowledged",
    "08-channel",
    "09-command",
    "10-offline",
]


@pytest.mark.timeout(900)
def test_a_user_watches_a_server_from_sign_in_to_revocation(stack: Stack, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    env = {
        **os.environ,
        "BASE_URL": stack.base_url,
        "AGENT_URL": stack.agent_url,
        "PYTHON": sys.executable,
        "REPO_ROOT": str(ROOT),
        "CHROMIUM": str(CHROMIUM),
        "ARTIFACTS": str(ARTIFACTS),
        "WORK_DIR": str(tmp_path),
    }
    run = subprocess.run(
        ["node", "--test", "--test-reporter=spec", str(SCENARIO)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    sys.stdout.write(run.stdout[-20000:])
    sys.stderr.write(run.stderr[-5000:])
    if run.returncode != 0:
        for log in sorted(stack.logs.glob("*.log")):
            sys.stdout.write(f"\n--- {log.name} (tail)\n{log.read_text(errors='replace')[-3000:]}")
    assert run.returncode == 0, "the browser scenario failed (its output is above)"
    missing = [step for step in STEPS if not (ARTIFACTS / f"{step}.png").exists()]
    assert missing == [], f"screenshots missing: {missing}"
