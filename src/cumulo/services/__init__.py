"""Use cases, written once and used by both transports (SDK embedded and HTTP server)."""
