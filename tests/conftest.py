import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch):
    """Nothing in the tests may reach the internet: point the Hub at a closed port."""
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


def run_python(code: str, env: dict | None = None, check: bool = True, timeout: int = 300):
    """Run `code` in a fresh interpreter (Hub settings are read at import time)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    res = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                         text=True, timeout=timeout, cwd=REPO)
    if check and res.returncode != 0:
        raise AssertionError(f"subprocess failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def run_cli(*args, env: dict | None = None, check: bool = True, timeout: int = 300):
    """Run the installed ``astrozoo`` command."""
    exe = Path(sys.executable).with_name("astrozoo")
    full_env = {**os.environ, **(env or {})}
    res = subprocess.run([str(exe), *map(str, args)], env=full_env, capture_output=True, text=True,
                         timeout=timeout, cwd=REPO)
    if check and res.returncode != 0:
        raise AssertionError(f"astrozoo {' '.join(map(str, args))} failed ({res.returncode}):\n"
                             f"{res.stdout}\n{res.stderr}")
    return res
