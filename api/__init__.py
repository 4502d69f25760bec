"""API: the REST surface and the frontend sockets."""
