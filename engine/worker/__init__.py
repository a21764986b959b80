"""The worker queue between the UI and the engine: protocol, outbox, server, client, runs."""
