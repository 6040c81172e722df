"""`priorizer --help` and every command's help read as sentences: none broken off mid-way,
no line split inside a word, no Python type tags (`<bool>`, `<path>`)."""

from __future__ import annotations

import re

import pytest

from tests.support.priorizer_server import describe, run_cli

pytestmark = pytest.mark.slow

TYPE_TAG = re.compile(r"<[a-z][\w\[\], |]*>")
WIDTH = {"COLUMNS": "80"}


def help_of(*command: str) -> str:
    result = run_cli([*command, "--help"], WIDTH)
    assert result.returncode == 0, describe(result)
    assert result.stderr == "", describe(result)
    return result.stdout


def section(text: str, title: str) -> list[str]:
    """The entries of a section ("Commands:", "Options:"), continuation lines joined."""
    lines = text.split(f"\n{title}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    entries: list[str] = []
    for line in lines:
        if re.match(r"^  \S", line):
            entries.append(line.strip())
        elif entries:
            entries[-1] += " " + line.strip()
    return entries


def description(text: str) -> list[str]:
    """The paragraphs between the usage line and the first section, each on one line."""
    body = text.split("\n\n", 1)[1].split("\nOptions:\n", 1)[0]
    return [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]


def commands() -> dict[str, str]:
    listed = section(help_of(), "Commands:")
    return dict(entry.split(None, 1) for entry in listed)


def test_the_command_list_gives_each_command_a_whole_sentence():
    listed = commands()

    assert {"serve", "status", "harvest", "import-json", "backup"} <= set(listed)
    for name, summary in listed.items():
        assert summary.endswith(".") and not summary.endswith("..."), (name, summary)
        assert summary[0].isupper(), (name, summary)


def test_every_command_s_help_reads_as_sentences():
    for name in commands():
        text = help_of(name)

        assert not TYPE_TAG.search(text), (name, TYPE_TAG.findall(text))
        assert not re.search(r"[a-z]-\n", text), (name, "a word split over two lines")
        paragraphs = description(text)
        assert len(paragraphs) >= 1, (name, text)
        for paragraph in paragraphs:
            assert paragraph.endswith("."), (name, paragraph)
        for entry in section(text, "Options:"):
            assert re.search(r"\.(  \[.*\])?$", entry), (name, entry)
        usage = text.splitlines()[0]
        assert usage.startswith(f"Usage: priorizer {name} [OPTIONS]"), usage
        assert not re.search(r"\{[a-z_]+\}", usage), (name, "arguments are named in capitals")
