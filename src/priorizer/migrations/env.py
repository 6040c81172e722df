"""Alembic environment: the URL comes from the caller (`priorizer.db.migrate`). After the
migrations, PostgreSQL's server-side functions are brought to this code's version, in the same
transaction (`allocation.picks.install_functions`)."""

from alembic import context
from sqlalchemy import create_engine, pool

from priorizer.allocation.picks import install_functions
from priorizer.models import metadata

config = context.config


def run() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "priorizer.db.alembic_config sets the URL"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            install_functions(connection)
    engine.dispose()


run()
