"""The Getting started page's shell commands, run as written from a clean folder (once `featurestore init` exists)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

PAGE = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"
SH = re.compile(r"```sh\n(?P<code>.*?)\n```", re.S)


def page_script(port: int) -> str:
    """The page's sh blocks as one bash script: install skipped, the server on ``port`` and stopped at the end."""
    lines = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for block in SH.findall(PAGE.read_text()):
        for line in block.splitlines():
            if line.startswith("pip install"):
                continue
            line = line.replace("6566", str(port))
            if line.startswith("curl"):
                lines.append(
                    f"for _ in $(seq 100); do curl -sf localhost:{port}/health >/dev/null && break; sleep 0.1; done"
                )
            lines.append(line)
    return "\n".join(lines) + "\n"


def featurestore_has_init() -> bool:
    from typer.main import get_command

    from featurestore.cli.main import app

    return "init" in get_command(app).commands  # type: ignore[attr-defined]


def test_getting_started_commands_run_from_a_clean_folder(tmp_path: Path) -> None:
    if not featurestore_has_init():
        pytest.skip("`featurestore init` is not available yet (being added in parallel); the page cannot run")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        ["bash", "-c", page_script(free_port())], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '{"status":"ok"' in done.stdout  # the health body (it also names the version)
