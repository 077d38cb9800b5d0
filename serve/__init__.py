"""Serving the best model of a sweep with Ray Serve: the gate, the HTTP API, the playground
and a client."""
