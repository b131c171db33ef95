"""One terminal-safe line for every message (issue 29, class 8)."""

from __future__ import annotations

import pytest

from lumbarview.core.errors import CorruptFileError
from lumbarview.core.text import safe_line
from lumbarview.core.types import LoadIssue, Severity


@pytest.mark.parametrize(("raw", "escaped"), [
    ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),   # set the terminal's title
    ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),          # clear the screen
    ("two\nlines\r", "two\\x0alines\\x0d"),
    ("\x9b31m", "\\x9b31m"),                         # a C1 control (CSI)
    ("\x7f", "\\x7f"),
    ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),        # line and paragraph separators
    ("abc\u202edcba", "abc\\u202edcba"),             # a right-to-left override
    ("lone \udc80 surrogate", "lone \\udc80 surrogate"),
])
def test_control_characters_are_written_as_escapes(raw: str, escaped: str) -> None:
    assert safe_line(raw) == escaped


def test_ordinary_text_is_kept_as_it_is() -> None:
    text = "L4-L5 Ø 12.5 mm — naïve 脊椎 \\x41 tab-free"
    assert safe_line(text) == text


def test_a_long_message_is_cut_and_says_how_much_was_cut() -> None:
    line = safe_line("x" * 1000, limit=100)
    assert line.startswith("x" * 100) and line.endswith("(900 more characters)")
    assert len(line) < 130


def test_errors_and_issues_are_one_safe_line_whatever_the_file_held() -> None:
    error = CorruptFileError("/data/\x1b[31mred.nrrd", "field 'x\x1b]2;title\x07' bad\nsecond line",
                             "re-copy\rit")
    text = str(error)
    assert all(ch >= " " for ch in text), repr(text)
    assert "\\x1b]2;title\\x07" in text and "\\x0asecond line" in text
    issue = LoadIssue(Severity.ERROR, "load.failed", "a\x00b\nc", "/d/\x1b.mha")
    assert issue.message == "a\\x00b\\x0ac" and issue.path == "/d/\\x1b.mha"
    assert issue.to_dict()["message"] == "a\\x00b\\x0ac"
