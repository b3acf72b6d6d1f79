"""Least privilege on PostgreSQL (issue 27): the app connects as a role that owns nothing.
Run by the migrations role (which owns the tables) after ``migrate``: the app role gets
SELECT, INSERT, UPDATE and DELETE on every table, except the history, which it may only
read and append to (the audit events, the readings, the chain verifications), the chains'
heads, which it may not delete, and the migrations table, which it may only read. It owns
no table, so it can neither switch the append-only triggers off, nor truncate, alter or drop
anything. docker/compose.yaml runs it in the ``migrate`` job."""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from psycopg2 import sql

from xrayweb.audit.models import ChainCheck, ChainedModel, ChainHead


def append_only_tables() -> list[str]:
    """The tables the app may only read and append to."""
    chained = [m for m in apps.get_models() if issubclass(m, ChainedModel)]
    return sorted(m._meta.db_table for m in [*chained, ChainCheck])


class Command(BaseCommand):
    help = (
        "Grant the app's PostgreSQL role what it needs and no more (history: SELECT and "
        "INSERT only). Run as the role that owns the tables, after migrate."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--role", required=True, help="the app's login role")

    def handle(self, *args, role: str, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("db_grants is for PostgreSQL; SQLite has no roles.")
        role_id = sql.Identifier(role)
        history = append_only_tables()
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            (owner,) = cursor.fetchone()
            if owner == role:
                raise CommandError(f"run db_grants as the tables' owner, not as {role!r}")
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            if cursor.fetchone() is None:
                raise CommandError(f"no PostgreSQL role {role!r}")
            for statement in [
                "GRANT USAGE ON SCHEMA public TO {role}",
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
                "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
                "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON django_migrations FROM {role}",
            ]:
                cursor.execute(sql.SQL(statement).format(role=role_id))
            for table in history:
                cursor.execute(
                    sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}").format(
                        table=sql.Identifier(table), role=role_id
                    )
                )
            cursor.execute(
                sql.SQL("REVOKE DELETE, TRUNCATE ON {table} FROM {role}").format(
                    table=sql.Identifier(ChainHead._meta.db_table), role=role_id
                )
            )
        self.stdout.write(
            f"{role}: read and write on the tables of {owner}; read and append only on "
            + ", ".join(history)
        )
