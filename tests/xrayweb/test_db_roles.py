"""Least privilege on PostgreSQL (issue 27): in compose the app connected as a superuser, so
whoever took the app could switch the append-only triggers off and rewrite or truncate the
history. Here a real PostgreSQL gets the two roles compose creates: the migrations role owns
the tables, and after ``db_grants`` the app role can run the app (write studies, append to
the audit chain, verify it) but cannot change, delete, truncate or unguard the history."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest
from django.conf import settings
from psycopg2 import errors, sql

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="roles are PostgreSQL's: the PostgreSQL pass of make test runs this"
)


def _server(**options):
    db = settings.DATABASES["default"]
    params = {"host": db["HOST"], "port": db["PORT"] or 5432, "user": db["USER"]}
    if db.get("PASSWORD"):
        params["password"] = db["PASSWORD"]
    return psycopg2.connect(**(params | options))


def _url(role: str, name: str) -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{role}@{db['HOST']}:{db['PORT'] or 5432}/{name}"


def _manage(url: str, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "xrayweb.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def roles():
    """A database owned by a fresh migrations role, migrated by it, with a fresh app role
    granted by db_grants; dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    owner, app, name = f"xw_owner_{tag}", f"xw_app_{tag}", f"xw_roles_{tag}"
    admin = _server(dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        for role in (owner, app):
            cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        cursor.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    try:
        migrated = _manage(_url(owner, name), "migrate", "--noinput", "-v0")
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        granted = _manage(_url(owner, name), "db_grants", "--role", app)
        assert granted.returncode == 0, granted.stderr[-3000:]
        assert "audit_auditevent" in granted.stdout
        yield owner, app, name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            for role in (app, owner):
                cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.close()


def test_the_app_role_runs_the_app_and_verifies_the_chain(roles):
    _, app, name = roles
    script = (
        "from django.contrib.auth import get_user_model\n"
        "from xrayweb.audit.services import audit_record\n"
        "get_user_model().objects.create(username='reader')\n"
        "audit_record(actor=None, action='study.view', detail={'n': 1})\n"
        "print('ok')\n"
    )
    wrote = _manage(_url(app, name), "shell", "-c", script)
    assert wrote.returncode == 0 and "ok" in wrote.stdout, wrote.stderr[-3000:]
    verified = _manage(_url(app, name), "audit_verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr[-3000:]
    assert "chain intact" in verified.stdout


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'study.upload'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
        "UPDATE review_review SET label = 'normal'",
        "TRUNCATE review_review CASCADE",
        "DELETE FROM audit_chainhead",
        "DELETE FROM audit_chaincheck",
        "INSERT INTO django_migrations (app, name, applied) VALUES ('x', 'y', now())",
        "DROP TABLE studies_study CASCADE",
    ],
)
def test_the_app_role_cannot_touch_the_history(roles, statement):
    _, app, name = roles
    connection = _server(dbname=name, user=app)
    try:
        with pytest.raises(errors.InsufficientPrivilege), connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def test_the_app_role_writes_the_rest(roles):
    _, app, name = roles
    connection = _server(dbname=name, user=app)
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE studies_study SET site = site WHERE false")
            cursor.execute("DELETE FROM django_session WHERE false")
            cursor.execute("SELECT count(*) FROM audit_auditevent")
            assert cursor.fetchone()[0] >= 1
    finally:
        connection.rollback()
        connection.close()


def test_db_grants_refuses_sqlite_and_the_app_role_itself(roles):
    _, app, name = roles
    refused = _manage(_url(app, name), "db_grants", "--role", app)
    assert refused.returncode != 0 and "owner" in refused.stderr
    sqlite = _manage("sqlite:////tmp/xrayweb-none.sqlite3", "db_grants", "--role", app)
    assert sqlite.returncode != 0 and "PostgreSQL" in sqlite.stderr
