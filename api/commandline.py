"""The one grammar a remote shell command may have, and the allowlist decided on its parsed form.

A command reaches agents that run it in different ways: the reference agent splits it into an
argv and runs it without a shell; a legacy agent hands the text to `sh -c`. So the API accepts
only commands whose meaning is the same for both: a list of words and nothing a shell would
read as anything else (no operator, no expansion, no redirection, no comment, no assignment).
It decides on the parsed argv, and sends every agent the argv's canonical text, which `sh -c`
reads back as exactly that argv.

The grammar (docs/api.md repeats it):

    command  = blank* word (blank+ word)* blank*
    blank    = " " | TAB
    word     = part+
    part     = plain | single | double
    plain    = one of  A-Z a-z 0-9 _ @ % + = : , . / -
    single   = "'" any character but "'" "'"
    double   = '"' any character but '"' $ ` \\ ! '"'

and nowhere a control character (U+0000-U+001F but TAB, U+007F-U+009F), a backslash, and, unquoted,
any of ``; & | $ ` ( ) < > * ? [ ] ~ { } # ! ^`` or a non-ASCII character. The first word may not
hold an unquoted `=` (`sh` reads `NAME=value cmd` as an assignment). The argv is every word with
its quotes removed and its parts joined.

The allowlist patterns are matched, in full, against the canonical text: the argv's words
quoted by `shlex.quote` (a word only of plain characters as it is, any other word in single
quotes) and joined by one space, the first word quoted as well when it holds `=`. A command
typed plainly, `systemctl status nginx`, is its own canonical text; `echo "a  b"` is
`echo 'a  b'`. Two commands with the same argv get the same decision.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-")
BLANKS = frozenset(" \t")
# Inside double quotes `sh` still expands `$` and backquotes and reads backslash escapes; `!` is
# refused too (history expansion of an interactive bash).
NOT_IN_DOUBLE = frozenset('$`\\!"')


class CommandRejected(ValueError):
    """The command is outside the grammar; the message says where and why."""


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    argv: tuple[str, ...]
    canonical: str  # what the allowlist sees and what every agent is sent


def _control(char: str) -> bool:
    code = ord(char)
    return (code < 0x20 and char != "\t") or 0x7F <= code <= 0x9F


def _describe(char: str) -> str:
    return repr(char) if char.isprintable() and char != " " else f"U+{ord(char):04X}"


def parse(command: str) -> ParsedCommand:
    """The argv and canonical text of `command`, or CommandRejected."""
    words: list[str] = []
    word: list[str] | None = None  # the word being read, None between words
    first_plain_equals = False
    i, n = 0, len(command)
    while i < n:
        char = command[i]
        if _control(char):
            raise CommandRejected(f"control character {_describe(char)} at position {i}")
        if char in BLANKS:
            if word is not None:
                words.append("".join(word))
                word = None
            i += 1
            continue
        if word is None:
            word = []
        if char == "'":
            end = command.find("'", i + 1)
            if end < 0:
                raise CommandRejected(f"unterminated single quote at position {i}")
            inner = command[i + 1 : end]
            for offset, c in enumerate(inner):
                if _control(c):
                    raise CommandRejected(f"control character {_describe(c)} at position {i + 1 + offset}")
            word.append(inner)
            i = end + 1
            continue
        if char == '"':
            j = i + 1
            while j < n and command[j] != '"':
                c = command[j]
                if _control(c):
                    raise CommandRejected(f"control character {_describe(c)} at position {j}")
                if c in NOT_IN_DOUBLE:
                    raise CommandRejected(
                        f"{c!r} inside double quotes at position {j} (a shell expands it there; "
                        "use single quotes)"
                    )
                j += 1
            if j >= n:
                raise CommandRejected(f"unterminated double quote at position {i}")
            word.append(command[i + 1 : j])
            i = j + 1
            continue
        if char not in PLAIN:
            raise CommandRejected(
                f"{_describe(char)} at position {i} is not allowed unquoted (a shell would read "
                "it as syntax); quote the word in single quotes"
            )
        if char == "=" and not words:
            first_plain_equals = True
        word.append(char)
        i += 1
    if word is not None:
        words.append("".join(word))
    if not words:
        raise CommandRejected("empty command")
    if first_plain_equals:
        raise CommandRejected("an unquoted '=' in the first word (a shell reads NAME=value as an assignment)")
    return ParsedCommand(tuple(words), canonical(words))


def canonical(argv: list[str] | tuple[str, ...]) -> str:
    """The text `sh -c` reads back as exactly `argv` (and `shlex.split` too)."""
    quoted = [shlex.quote(w) for w in argv]
    if quoted and quoted[0] == argv[0] and "=" in argv[0]:
        quoted[0] = "'" + argv[0] + "'"
    return " ".join(quoted)


def allowed_by(allowlist: list[str], parsed: ParsedCommand) -> bool:
    """An empty allowlist allows every command of the grammar; otherwise one pattern must match
    the canonical text in full. A pattern that does not compile allows nothing."""
    if not allowlist:
        return True
    for pattern in allowlist:
        try:
            if re.fullmatch(pattern, parsed.canonical):
                return True
        except re.error:
            continue
    return False
