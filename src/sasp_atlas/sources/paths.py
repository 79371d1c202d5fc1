"""Where the atlas's run-time files are, in a wheel and in a checkout.

The repository keeps the design card's top level (``data_registry.yaml``, ``notebooks/``,
``book/``, ``_config.yml``, ``_toc.yml``, ``_static/``). A wheel carries copies of them under
``sasp_atlas/_project/`` (hatchling ``force-include`` in ``pyproject.toml``), so an installed
package finds its registry and page templates from any working directory. An editable install
or a source tree has no ``_project/`` folder; the files are then read from the checkout the
package was imported from (``<checkout>/src/sasp_atlas``). Nothing else in the package computes
a path from ``__file__``.
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = [
    "PACKAGE_DIR",
    "BUNDLED_DIR",
    "CHECKOUT_DIR",
    "project_file",
    "atlas_package_version",
    "atlas_version",
    "PROJECT_SKELETON",
]

PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: files copied into the wheel (see ``[tool.hatch.build.targets.wheel.force-include]``)
BUNDLED_DIR = PACKAGE_DIR / "_project"
#: the source checkout, when the package is imported from ``<checkout>/src/sasp_atlas``
CHECKOUT_DIR = PACKAGE_DIR.parents[1] if PACKAGE_DIR.parent.name == "src" else None

#: the hand-written files a book project needs (copied into an empty ``--project`` folder)
PROJECT_SKELETON = (
    "_config.yml",
    "_toc.yml",
    "_static/sasp.css",
    "book/intro.md",
    "book/methods.md",
    "book/bad_inputs.md",
    "book/cite.md",
    "book/unverified_sources.md",
    "book/api.md",
    "book/references.bib",
    "book/scale.md",
)


def project_file(relative: str) -> Path:
    """Path of a project-level file (``data_registry.yaml``, ``notebooks/dataset.py``, ...).

    Looks in the wheel's bundled copy first, then in the checkout. Raises ``FileNotFoundError``
    naming both places when neither has it (a broken install: reinstall the package).
    """
    tried = []
    for base in (BUNDLED_DIR, CHECKOUT_DIR):
        if base is None:
            continue
        path = base / relative
        if path.exists():
            return path
        tried.append(str(path))
    raise FileNotFoundError(
        f"{relative} is not in the installed package nor in a source checkout (looked at "
        f"{', '.join(tried)}); reinstall sasp-atlas (`pip install .`)"
    )


def atlas_package_version() -> str:
    """The installed distribution's version, ``0+unknown`` when run from an uninstalled tree."""
    try:
        return version("sasp-atlas")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


@lru_cache(maxsize=4)
def atlas_version(root: str | Path | None = None) -> dict[str, str]:
    """Package version and git commit of the build (``$SASP_ATLAS_COMMIT`` overrides git; git is
    asked in ``root``, else in the source checkout, else in the working directory)."""
    commit = os.environ.get("SASP_ATLAS_COMMIT")
    if not commit:
        try:
            commit = subprocess.run(
                ["git", "rev-parse", "--short=10", "HEAD"],
                cwd=root or CHECKOUT_DIR or Path.cwd(),
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
    return {"version": atlas_package_version(), "commit": commit or "unknown"}
