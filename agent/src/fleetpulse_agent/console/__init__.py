"""`fleetpulse`, the operators' command: sign in once, then servers, keys, rules, alerts, commands
and a live view of a server, from any machine that reaches the API."""
