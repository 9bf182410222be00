"""Adapters that persist the domain: a SQL metadata store and an fsspec artifact store."""
