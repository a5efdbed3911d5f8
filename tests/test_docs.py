"""The user documentation in docs/ keeps up with the code where that is cheap to check: every
diagnostic code, every CLI command and flag, every decorator key, every featql.toml key and
every aggregate function is documented, and the docs name no diagnostic code the code lacks."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from featql.cli.commands import COMMANDS
from featql.cli.main import build_parser
from featql.compiler.decorators import METADATA, SCHEMAS
from featql.core import config
from featql.semantics.aggregates import FUNCTIONS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CODE = re.compile(r"""["']([EW]\d{3})["']""")  # a code as a string literal in the source


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The text of the first `## <heading>...` section, up to the next `## ` heading."""
    start = text.find(f"\n## {heading}")
    assert start >= 0, f"no section '## {heading}'"
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def _mentions(text: str, literal: str) -> bool:
    """`literal` written in backticks: `--view`, `--view V`, `--yes`, `-y` (not `--view-x`)."""
    return re.search("`" + re.escape(literal) + r"(?![\w-])", text) is not None


def _table_keys(text: str) -> set[str]:
    """The first cell of every table row: | `key` | ..."""
    return set(re.findall(r"(?m)^\| `([^`]+)` \|", text))


def source_codes() -> set[str]:
    codes: set[str] = set()
    for path in (ROOT / "featql").rglob("*.py"):
        codes.update(CODE.findall(path.read_text(encoding="utf-8")))
    return codes


def test_the_source_emits_diagnostic_codes() -> None:
    codes = source_codes()
    assert {"E001", "E101", "E401", "E601", "E701", "W802"} <= codes, sorted(codes)


def test_every_diagnostic_code_in_the_source_is_documented_and_no_other() -> None:
    documented = {c for c in _table_keys(_read("diagnostics.md")) if re.fullmatch(r"[EW]\d{3}", c)}
    codes = source_codes()
    assert sorted(codes - documented) == [], "codes missing from docs/diagnostics.md"
    assert sorted(documented - codes) == [], "docs/diagnostics.md documents unknown codes"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser([])  # no command named: every command gets its arguments
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("featql's parser has no subcommands")


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_every_command_and_each_of_its_flags_is_in_cli_md(name: str) -> None:
    text = _read("cli.md")
    section = _section(text, f"`featql {name}")
    common = _section(text, "Options every command has")
    sub = _subcommands()[name]
    missing = []
    for action in sub._actions:
        if action.option_strings:
            for opt in action.option_strings:
                if not (_mentions(section, opt) or _mentions(common, opt)):
                    missing.append(opt)
        else:  # a positional: its metavar (DIR, SERVICE) or its choices
            shown = action.metavar or action.dest
            if action.choices:
                shown = "{" + ",".join(map(str, action.choices)) + "}"
            if not (_mentions(section, str(shown)) or f"`featql {name} {shown}" in section):
                missing.append(str(shown))
    assert missing == [], f"featql {name}: not in its section of docs/cli.md"


def test_the_top_level_options_are_in_cli_md() -> None:
    text = _read("cli.md")
    parser = build_parser([])
    opts = [o for a in parser._actions for o in a.option_strings]
    assert "--version" in opts
    assert [o for o in opts if not _mentions(text, o)] == []


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_every_key_of_every_decorator_is_in_language_md(kind: str) -> None:
    section = _section(_read("language.md"), f"`@{kind}`")
    missing = sorted(set(SCHEMAS[kind]) - _table_keys(section))
    assert missing == [], f"@{kind} keys missing from their table in docs/language.md"


def test_the_metadata_decorators_and_aggregate_functions_are_in_language_md() -> None:
    text = _read("language.md")
    assert [m for m in METADATA if f"`@{m}(" not in text] == []
    functions = _section(text, "`@feature_view`")
    assert [f.sql_name for f in FUNCTIONS.values()
            if not re.search(rf"`{f.sql_name}\(", functions)] == []


def test_every_featql_toml_key_is_in_config_md() -> None:
    text = _read("config.md")
    missing = []
    for section, keys in config._SECTIONS.items():
        table = _table_keys(_section(text, f"`[{section}]`"))
        missing += [f"[{section}] {k}" for k in keys if k not in table]
    assert missing == []


def test_the_docs_link_to_files_that_exist() -> None:
    for doc in [*DOCS.glob("*.md"), ROOT / "README.md"]:
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", doc.read_text("utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
