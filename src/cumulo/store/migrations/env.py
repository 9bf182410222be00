"""Alembic environment: the connection is handed in by cumulo.store.db.Database."""

from alembic import context

from cumulo.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
