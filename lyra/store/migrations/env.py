"""Alembic environment: runs on the connection Lyra hands it (see lyra.store.migrate)."""

from alembic import context

from lyra.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # plain `alembic` CLI use: build an engine from the URL
    from lyra.store.engine import create_engine_for

    engine = create_engine_for(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
