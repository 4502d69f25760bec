"""`fleetpulse`: FleetPulse from a terminal, on any machine that reaches the API.

    fleetpulse login [--api URL] [--email EMAIL]      sign in; the session is kept for the next commands
    fleetpulse logout
    fleetpulse servers                                 the servers this account sees
    fleetpulse keys create SERVER [--name NAME]        a new agent key and its one-line install
    fleetpulse keys list SERVER
    fleetpulse keys revoke KEY_ID
    fleetpulse rules [--server SERVER]                 alert rules
    fleetpulse alerts [--server SERVER] [--state firing|resolved]
    fleetpulse run SERVER COMMAND...                   a command on a server (its agent must allow it)
    fleetpulse watch SERVER                            history, then live metrics, logs and alerts

Every listing takes `--json`. The session (tokens, never the password) is kept in
`$XDG_CONFIG_HOME/fleetpulse/session.json`, mode 0600; an expired access token is refreshed with the
refresh token and the new pair kept. Without a session, `FLEETPULSE_EMAIL` / `FLEETPULSE_PASSWORD`
(and `FLEETPULSE_API_URL`) sign in for one command, as does the demo account `make run` writes.

Exit codes: 0 done; 1 the remote command failed (`run` answers the command's own exit code); 2 a
usage, sign-in or API error.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from ..rest import RestClient, RestError
from .store import SessionStore, config_dir
from .watch import watch

DEFAULT_API = "http://127.0.0.1:8000"
EXIT_FAILED = 1
EXIT_ERROR = 2


class UsageError(Exception):
    pass


def demo_file() -> Path:
    """Where `make run` writes its demo account (a development convenience, never required)."""
    explicit = os.environ.get("FLEETPULSE_DEMO_FILE")
    if explicit:
        return Path(explicit)
    run_dir = os.environ.get("FLEETPULSE_RUN_DIR")
    if run_dir:
        return Path(run_dir) / "demo.json"
    return Path(os.environ.get("FLEETPULSE_STATE_DIR", ".state")) / "run" / "demo.json"


def _demo() -> dict[str, str]:
    try:
        data = json.loads(demo_file().read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items() if isinstance(v, (str, int))} if isinstance(data, dict) else {}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetpulse", description="FleetPulse from a terminal.")
    parser.add_argument(
        "--api", help="the API's URL (default: the signed-in session's, or $FLEETPULSE_API_URL)"
    )
    parser.add_argument(
        "--config-dir", type=Path, help="where the session is kept (default: $XDG_CONFIG_HOME/fleetpulse)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    login = sub.add_parser("login", help="sign in and keep the session")
    login.add_argument("--email", default=os.environ.get("FLEETPULSE_EMAIL"))
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sub.add_parser("logout", help="sign out and forget the session")

    servers = sub.add_parser("servers", help="the servers this account sees")
    servers.add_argument("--json", action="store_true")

    keys = sub.add_parser("keys", help="agent API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="a new key for a server, and its one-line install")
    create.add_argument("server", help="the server's name or id")
    create.add_argument("--name")
    create.add_argument("--json", action="store_true")
    listing = keys.add_parser("list", help="a server's keys")
    listing.add_argument("server")
    listing.add_argument("--json", action="store_true")
    revoke = keys.add_parser("revoke", help="deactivate a key (its agent is disconnected)")
    revoke.add_argument("key_id")

    rules = sub.add_parser("rules", help="alert rules")
    rules.add_argument("--server")
    rules.add_argument("--json", action="store_true")

    alerts = sub.add_parser("alerts", help="alert episodes, newest first")
    alerts.add_argument("--server")
    alerts.add_argument("--state", choices=("firing", "resolved"))
    alerts.add_argument("--limit", type=int, default=50)
    alerts.add_argument("--json", action="store_true")

    run = sub.add_parser("run", help="run a command on a server (commands must be enabled and allowlisted)")
    run.add_argument("server")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="the command and its arguments")
    run.add_argument("--timeout", type=float, help="seconds the agent lets it run")
    run.add_argument("--json", action="store_true")

    w = sub.add_parser("watch", help="print one server's metrics, logs and alerts: history, then live")
    w.add_argument("server", help="the server's name or id")
    w.add_argument("--window", type=int, default=600, help="seconds of metrics history to show first")
    w.add_argument("--lines", type=int, default=20, help="log lines of history to show first")
    w.add_argument("--max-live", type=int, default=None, help="exit after this many live metrics samples")
    # One-off credentials (no session kept), as the environment or make run's demo account give them.
    w.add_argument("--email", default=None)
    w.add_argument("--password", default=None)
    return parser


def _table(rows: list[list[str]], header: list[str], out: TextIO) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)


def _s(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


class Console:
    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.store = SessionStore(args.config_dir or config_dir())

    def _api_url(self, session: dict[str, Any] | None) -> str:
        return (
            self.args.api
            or (session or {}).get("api_url")
            or os.environ.get("FLEETPULSE_API_URL")
            or _demo().get("api_url")
            or DEFAULT_API
        ).rstrip("/")

    async def client(self) -> RestClient:
        """A client signed in with the kept session, or once with explicit credentials."""
        session = self.store.load()
        api = self._api_url(session)
        if session is not None and session.get("refresh_token") and api == session["api_url"].rstrip("/"):
            return RestClient(
                api,
                access_token=session.get("access_token"),
                refresh_token=session.get("refresh_token"),
                on_tokens=self.store.update_tokens,
            )
        demo = _demo()
        email = getattr(self.args, "email", None) or os.environ.get("FLEETPULSE_EMAIL") or demo.get("email")
        password = (
            getattr(self.args, "password", None)
            or os.environ.get("FLEETPULSE_PASSWORD")
            or demo.get("password")
        )
        if not email or not password:
            raise UsageError(f"not signed in to {api}: run `fleetpulse login --api {api}` first")
        rest = RestClient(api)
        await rest.login(email, password)
        return rest

    async def login(self) -> int:
        api = self._api_url(None if self.args.api else self.store.load())
        email = self.args.email
        if not email:
            if not sys.stdin.isatty():
                raise UsageError("--email is needed (or FLEETPULSE_EMAIL)")
            email = (await asyncio.to_thread(input, "email: ")).strip()
        if self.args.password_stdin:
            password = (await asyncio.to_thread(sys.stdin.readline)).rstrip("\n")
        else:
            password = os.environ.get("FLEETPULSE_PASSWORD") or await asyncio.to_thread(
                getpass.getpass, "password: "
            )
        rest = RestClient(api)
        token = await rest.login(email, password)
        self.store.save(
            {
                "api_url": api,
                "email": email,
                "access_token": token["access_token"],
                "refresh_token": token.get("refresh_token"),
            }
        )
        print(f"signed in to {api} as {email}; session kept in {self.store.path}", file=self.out)
        return 0

    async def logout(self) -> int:
        session = self.store.load()
        if session is not None and session.get("refresh_token"):
            rest = RestClient(session["api_url"], access_token=session.get("access_token"))
            try:
                await rest._call(
                    "POST",
                    "/auth/logout",
                    json_body={"refresh_token": session["refresh_token"]},
                    expect=(200, 204),
                    retry_auth=False,
                )
            except RestError as exc:  # the session is forgotten here whatever the server says
                print(f"fleetpulse: the server did not confirm the sign-out: {exc}", file=self.err)
        forgot = self.store.clear()
        print("signed out" if forgot else "not signed in", file=self.out)
        return 0

    def _json(self, value: Any) -> None:
        print(json.dumps(value, indent=2, sort_keys=True), file=self.out)

    async def servers(self, rest: RestClient) -> int:
        items = await rest.servers()
        if self.args.json:
            self._json(items)
            return 0
        rows = [
            [s["name"], s.get("status", "-"), _s(s.get("last_seen")), s.get("role", "-"), str(s["id"])]
            for s in items
        ]
        _table(rows, ["NAME", "STATUS", "LAST SEEN", "ROLE", "ID"], self.out)
        return 0

    async def keys(self, rest: RestClient) -> int:
        sub = self.args.keys_command
        if sub == "revoke":
            await rest.revoke_key(self.args.key_id)
            print(f"key {self.args.key_id} revoked", file=self.out)
            return 0
        server = await rest.find_server(self.args.server)
        if sub == "create":
            created = await rest.create_key(str(server["id"]), self.args.name)
            if self.args.json:
                self._json(created)
                return 0
            print(f"key {created['id']} for {server['name']} (shown once, keep it safe):", file=self.out)
            print(f"  {created['key']}", file=self.out)
            if created.get("install_command"):
                print("install the agent on that server with:", file=self.out)
                print(f"  {created['install_command']}", file=self.out)
            return 0
        items = await rest.keys(str(server["id"]))
        if self.args.json:
            self._json(items)
            return 0
        rows = [
            [
                str(k["id"]),
                _s(k.get("name")),
                "active" if k.get("is_active") else "inactive",
                _s(k.get("last_used")),
            ]
            for k in items
        ]
        _table(rows, ["ID", "NAME", "STATE", "LAST USED"], self.out)
        return 0

    async def _server_id(self, rest: RestClient, name: str | None) -> str | None:
        return None if name is None else str((await rest.find_server(name))["id"])

    async def rules(self, rest: RestClient) -> int:
        items = await rest.rules(await self._server_id(rest, self.args.server))
        if self.args.json:
            self._json(items)
            return 0
        rows = []
        for item in items:
            rule = item.get("rule") or {}
            rows.append(
                [
                    _s(rule.get("name")),
                    _s(rule.get("severity")),
                    "on" if rule.get("enabled", True) else "off",
                    _s(rule.get("server_id")),
                    str(item.get("id")),
                ]
            )
        _table(rows, ["NAME", "SEVERITY", "ENABLED", "SERVER", "ID"], self.out)
        return 0

    async def alerts(self, rest: RestClient) -> int:
        server_id = await self._server_id(rest, self.args.server)
        items = await rest.alerts(server_id, self.args.state, self.args.limit)
        if self.args.json:
            self._json(items)
            return 0
        rows = [
            [
                _s(a.get("started_at")),
                _s(a.get("state")),
                _s(a.get("severity")),
                _s(a.get("rule_name") or a.get("metric_type")),
                _s(a.get("server_name") or a.get("server_id")),
                _s(a.get("message")),
            ]
            for a in items
        ]
        _table(rows, ["STARTED", "STATE", "SEVERITY", "RULE", "SERVER", "MESSAGE"], self.out)
        return 0

    async def run(self, rest: RestClient) -> int:
        argv = (
            [a for a in self.args.argv if a != "--"] if self.args.argv[:1] == ["--"] else list(self.args.argv)
        )
        if not argv:
            raise UsageError("run: the command is missing (fleetpulse run SERVER COMMAND...)")
        command = " ".join(argv)
        server = await rest.find_server(self.args.server)
        result = await rest.run_command(str(server["id"]), command, self.args.timeout)
        if self.args.json:
            self._json(result)
        else:
            if result.get("output"):
                self.out.write(
                    result["output"] if result["output"].endswith("\n") else result["output"] + "\n"
                )
            if result.get("error"):
                print(f"fleetpulse run: {result['error']}", file=self.err)
        code = result.get("exit_code")
        if isinstance(code, int):
            return code
        return 0 if result.get("success") else EXIT_FAILED

    async def watch(self, rest: RestClient) -> int:
        a = self.args
        return await watch(
            rest, rest.base_url, a.server, window=a.window, lines=a.lines, max_live=a.max_live, out=self.out
        )

    async def main(self) -> int:
        command = self.args.command
        if command == "login":
            return await self.login()
        if command == "logout":
            return await self.logout()
        rest = await self.client()
        async with rest:
            handler = getattr(self, command)
            result: int = await handler(rest)
            return result


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(args, out or sys.stdout, err or sys.stderr)
    try:
        return asyncio.run(console.main())
    except KeyboardInterrupt:
        return 0
    except (RestError, UsageError) as exc:
        print(f"fleetpulse {args.command}: {exc}", file=console.err)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
