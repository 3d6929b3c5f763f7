"""Fuzz the definitions loader with malformed modules: every failure is a DefinitionError naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore.errors import DefinitionError
from featurestore.registry.discover import discover

GOOD = """
from featurestore import Entity, Feature, FeatureView, Float64, ParquetSource
e = Entity("e", join_keys=["id"])
v = FeatureView("v", [e], ParquetSource("x.parquet"), [Feature("f", Float64)])
"""

FRAGMENTS = [
    GOOD,
    "from featurestore import Entity\nx = Entity('e', join_keys=[])\n",
    "from featurestore import Entity\nx = Entity('bad name', join_keys=['id'])\n",
    "from featurestore import FeatureView, ParquetSource\nv = FeatureView('v', ['nope'], ParquetSource('x'), [])\n",
    "import this_module_does_not_exist\n",
    "def f(:\n",
    "raise RuntimeError('boom')\n",
    "x = 1 / 0\n",
    "from featurestore import Feature, Float64\nf = Feature('f', 'Float64')\n",
    "from featurestore import FeatureService\ns = FeatureService('s', [])\n",
    "\x00",
    "if True:\n  x = 1\n y = 2\n",
    "",
    "value = 42\n",
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=3),
    noise=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30),
    with_noise=st.booleans(),
)
def test_malformed_modules_give_a_definition_error_naming_the_module(
    make_repo: Any, parts: list[str], noise: str, with_noise: bool
) -> None:
    modules = {f"m{i}.py": text for i, text in enumerate(parts)}
    if with_noise:
        modules["zz_noise.py"] = noise
    repo: Path = make_repo(modules, name="fuzz")
    for stale in [*(repo / "definitions").glob("m*.py"), *(repo / "definitions").glob("zz_*.py")]:
        if stale.name not in modules:
            stale.unlink()
    try:
        defs = discover(repo / "definitions")
    except DefinitionError as exc:
        message = str(exc)
        assert message.startswith("module definitions") or "definitions" in message
        assert exc.module is None or exc.module.startswith("definitions")
        assert len(message) < 2000
    else:
        assert set(defs.views) <= {"v"}
