"""The API's SQL (asyncpg), one module per thing it holds (the live sockets keep theirs in
`api/live/db.py`).

Every query takes a connection (or the pool) as its first argument, so a route can run several in
one transaction. Callers name the module a query lives in: `from ..db import servers as
servers_db`, then `async with transaction(pool) as conn:` and `servers_db.get_server(conn, ...)`.

- `pool`: the pool the lifespan owns, `connection` and `transaction` from it, the type aliases.
- `errors`: `DatabaseError` and its subclasses, the only database errors a route ever sees.
- `users`: users and their refresh tokens.
- `servers`: servers, their shares, and a user's role on one (`server_role`, the authorization).
- `keys`: the agents' API keys.
- `audit`: the audit log.
- `history`: bounded reads of the stored samples, logs and rollups.
- `commands`: agent presence, command settings and the command history.
- `alerts`: alert rules and episodes.
"""
