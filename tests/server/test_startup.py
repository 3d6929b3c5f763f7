"""Start-up stays light: building the server app and running its start-up loads no dataframe or SQL engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("polars", "duckdb", "numpy", "pandera", "pyarrow")

CHILD = """
import asyncio, sys
from featurestore.config import load_settings
from featurestore.server.app import create_app

app = create_app(load_settings(sys.argv[1]))

async def start_and_stop():
    async with app.router.lifespan_context(app):
        pass

asyncio.run(start_and_stop())
print(",".join(m for m in sys.argv[2].split(",") if m in sys.modules))
"""


def test_the_server_starts_without_heavy_imports(tmp_path: Path) -> None:
    (tmp_path / "featurestore.toml").write_text('project = "light"\nauth = "off"\n')
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), ",".join(HEAVY)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"loaded at start-up: {out.stdout.strip()}"
