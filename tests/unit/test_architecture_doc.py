"""The docs stay true to the tree: docs/ARCHITECTURE.md lists exactly the packages under lyra/,
and every file docs/extending.md names exists (or, for a file a recipe creates, its folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
EXTENDING = REPO / "docs" / "extending.md"
README = REPO / "README.md"

#: A package line of ARCHITECTURE.md's block: ``lyra/<pkg>[/<sub>...]`` then spaces.
PACKAGE_LINE = re.compile(r"^lyra/([a-z_][a-z0-9_]*(?:/[a-z_][a-z0-9_]*)*)\s")
#: A backticked repository path: starts at a top-level folder or is a root file.
TOP = ("lyra/", "tests/", "apps/", "docs/", "notebooks/", "data/", "benchmarks/", "deploy/", "scripts/")
ROOT_FILES = re.compile(r"^[A-Za-z_.-]+\.(md|toml|txt|cfg|ini)$")


def _package_block() -> list[str]:
    """The lines of the first fenced block under "## Packages" in ARCHITECTURE.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Packages", 1)[1]
    block = section.split("```", 2)[1]
    return block.splitlines()


def listed_packages() -> list[str]:
    return [m.group(1) for line in _package_block() if (m := PACKAGE_LINE.match(line))]


def real_packages() -> set[str]:
    """Every folder under lyra/ with an ``__init__.py`` (Alembic's migrations excluded)."""
    root = REPO / "lyra"
    return {
        init.parent.relative_to(root).as_posix()
        for init in root.rglob("__init__.py")
        if init.parent != root and "migrations" not in init.parent.parts and "__pycache__" not in init.parts
    }


def test_the_block_is_found_and_has_no_duplicates() -> None:
    listed = listed_packages()
    assert len(listed) >= 10, listed  # the parser still finds the block
    assert len(listed) == len(set(listed)), sorted(p for p in listed if listed.count(p) > 1)


def test_every_listed_package_exists() -> None:
    missing = [p for p in listed_packages() if not (REPO / "lyra" / p / "__init__.py").is_file()]
    assert not missing, f"docs/ARCHITECTURE.md lists packages that do not exist: {missing}"


def test_every_package_is_listed() -> None:
    unlisted = sorted(real_packages() - set(listed_packages()))
    assert not unlisted, f"add a line for each to docs/ARCHITECTURE.md's package block: {unlisted}"


# ------------------------------------------------------------------------------ extending.md
def backticked_paths(text: str) -> list[str]:
    """Backticked spans that are repository paths (no spaces; under a top-level folder, or a
    root file like README.md)."""
    spans = re.findall(r"`([^`\n]+)`", text)
    return [s for s in spans if " " not in s and (s.startswith(TOP) or ROOT_FILES.match(s))]


def test_the_path_finder_finds_paths() -> None:
    got = backticked_paths("see `lyra/x.py`, `tests/unit/a b.py`, `README.md`, `lyra.load_bars`, `ctx.now`")
    assert got == ["lyra/x.py", "README.md"]


def test_every_path_in_extending_exists() -> None:
    paths = backticked_paths(EXTENDING.read_text(encoding="utf-8"))
    assert len(paths) >= 25, paths
    missing = []
    for p in paths:
        if "<" in p:  # a file the recipe creates (``data/ohlcv/<venue>_...``): its folder exists
            folder = p.split("<", 1)[0].rsplit("/", 1)[0]
            if not (REPO / folder).is_dir():
                missing.append(p)
        elif not (REPO / p.rstrip("/")).exists():
            missing.append(p)
    # The example files a recipe creates are named as examples, not as existing files.
    created = {"lyra/strategy/momentum.py", "apps/funding.py", "lyra/dashboards/funding.py"}
    missing = [p for p in missing if p not in created]
    assert not missing, f"docs/extending.md names paths that do not exist: {missing}"
    for p in created:  # ...and they must not exist (or the recipe's example is stale)
        assert p in paths and not (REPO / p).exists(), p


@pytest.mark.parametrize("recipe", ["## 1. A new venue", "## 2. A new strategy", "## 3. A new risk check",
                                    "## 4. A new dashboard panel"])
def test_each_recipe_names_files_to_touch_and_a_test_to_copy(recipe: str) -> None:
    text = EXTENDING.read_text(encoding="utf-8")
    assert recipe in text
    body = text.split(recipe, 1)[1].split("\n## ", 1)[0]
    paths = backticked_paths(body)
    tests = [p for p in paths if re.match(r"tests/.+/test_[a-z0-9_]+\.py$", p)]
    code = [p for p in paths if p.startswith(("lyra/", "apps/")) and p.endswith(".py")]
    assert tests and all((REPO / t).is_file() for t in tests), (recipe, tests)
    assert code, recipe


def test_readme_links_the_guide() -> None:
    text = README.read_text(encoding="utf-8")
    contributing = text.split("## Contributing", 1)[1].split("\n## ", 1)[0]
    assert "docs/extending.md" in contributing
