"""The remote command grammar (`api/commandline.py`): what a shell would read differently from the
allowlist is refused, and what is accepted means the same argv to `shlex` and to `sh -c`."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from api.commandline import CommandRejected, allowed_by, canonical, parse

REFUSED = [
    "echo hi; id -un",
    "echo hi && id -un",
    "echo hi || id -un",
    "echo hi | id -un",
    "echo hi & id -un",
    "echo $(id -un)",
    "echo `id -un`",
    "echo ${HOME}",
    "echo $HOME",
    'echo "$(id -un)"',
    'echo "`id -un`"',
    'echo "\\$x"',
    "echo hi > /tmp/x",
    "echo hi < /etc/passwd",
    "echo hi\nid -un",
    "echo hi\rid",
    "echo hi\x00id",
    "echo *",
    "echo /etc/pass?d",
    "echo /etc/[p]asswd",
    "echo ~root",
    "echo {a,b}",
    "echo hi # comment",
    "! id",
    "(id)",
    "echo \\; id",
    "LD_PRELOAD=/tmp/x.so echo hi",
    "A=1 id",
    "echo 'unterminated",
    'echo "unterminated',
    "echo héllo",
    "echo a^b",
    "",
    "   ",
]


@pytest.mark.parametrize("command", REFUSED)
def test_shell_syntax_is_refused(command: str) -> None:
    with pytest.raises(CommandRejected):
        parse(command)


ACCEPTED = {
    "uptime": ("uptime",),
    "systemctl status nginx": ("systemctl", "status", "nginx"),
    "  df  -h\t/ ": ("df", "-h", "/"),
    "echo 'hi; id -un'": ("echo", "hi; id -un"),
    "echo '$(id -un)' '`id`' '*' '~'": ("echo", "$(id -un)", "`id`", "*", "~"),
    'echo "a  b" c': ("echo", "a  b", "c"),
    "echo a'b'\"c\"": ("echo", "abc"),
    "echo ''": ("echo", ""),
    "journalctl -u nginx --since=-1h -n 50": ("journalctl", "-u", "nginx", "--since=-1h", "-n", "50"),
    "'A=1' id": ("A=1", "id"),
    "echo 'héllo'": ("echo", "héllo"),
    "curl http://127.0.0.1:8000/health,x@y%z+": ("curl", "http://127.0.0.1:8000/health,x@y%z+"),
}


@pytest.mark.parametrize("command", sorted(ACCEPTED))
def test_accepted_commands_mean_one_argv_to_shlex_and_to_sh(command: str) -> None:
    parsed = parse(command)
    assert parsed.argv == ACCEPTED[command]
    # The canonical text is what agents are sent: shlex and a real `sh -c` both read it as argv.
    assert tuple(shlex.split(parsed.canonical)) == parsed.argv
    printed = subprocess.run(
        ["/bin/sh", "-c", 'for a in "$@"; do printf "%s\\0" "$a"; done', "sh", *parsed.argv],
        capture_output=True,
        check=True,
    ).stdout
    through_sh = subprocess.run(
        [
            "/bin/sh",
            "-c",
            'printf_argv() { for a in "$@"; do printf \'%s\\0\' "$a"; done; }; printf_argv '
            + parsed.canonical,
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert through_sh == printed


def test_the_canonical_text_is_a_fixed_point() -> None:
    for command in ACCEPTED:
        parsed = parse(command)
        assert parse(parsed.canonical) == parsed
    assert canonical(["A=1", "id"]) == "'A=1' id"


def test_the_allowlist_sees_the_canonical_text() -> None:
    # `echo .*` allowed: the chained command of the attack is refused before any pattern is tried,
    # and a quoted semicolon is a plain argument.
    with pytest.raises(CommandRejected):
        parse("echo hi; id -un")
    assert allowed_by([r"echo .*"], parse("echo 'hi; id -un'"))
    assert allowed_by([r"echo 'a  b'"], parse('echo "a  b"'))
    assert not allowed_by([r"echo [a-z]+"], parse("echo 'a b'"))
