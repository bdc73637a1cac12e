"""Test connection: the console really connects to the user's PostgreSQL (one that checks
passwords) and says, in a person's words, what is wrong and which field to fix."""

import dataclasses

import pytest

from servers import private
from servers.private import DatabaseParams
from tests.servers.conftest import closed_port_origin
from tests.servers.private_support import SUPERUSER_PASSWORD

pytestmark = [pytest.mark.multiprocess]


def test_a_reachable_database_with_the_right_password_is_ok(user_database):
    check = private.test_connection(user_database)

    assert check.ok and check.reason == ""
    assert check.version.split(".")[0].isdigit()


def test_a_wrong_password_is_named_and_never_repeated(user_database):
    wrong = dataclasses.replace(user_database, password="not-the-password-0123")

    check = private.test_connection(wrong)

    assert not check.ok and check.field == "password"
    assert f"refused the user {user_database.user} with this password" in check.reason
    assert "not-the-password-0123" not in check.reason


def test_a_missing_database_is_named(user_database):
    check = private.test_connection(dataclasses.replace(user_database, database="nosuchdb"))

    assert not check.ok and check.field == "database"
    assert "no database named nosuchdb" in check.reason


def test_a_port_where_nothing_listens_is_connection_refused(user_database):
    port = int(closed_port_origin().rsplit(":", 1)[1])

    check = private.test_connection(dataclasses.replace(user_database, port=port))

    assert not check.ok and check.field == "host"
    assert "connection refused" in check.reason and f"127.0.0.1:{port}" in check.reason


def test_a_host_that_does_not_resolve_is_named(user_database):
    check = private.test_connection(dataclasses.replace(user_database, host="db.refract.invalid"))

    assert not check.ok and check.field == "host"
    assert "db.refract.invalid does not resolve" in check.reason


def test_a_user_who_may_not_create_schemas_is_refused_with_the_grant_to_run(password_postgres):
    params = password_postgres.create_database(may_create_schemas=False)
    try:
        check = private.test_connection(params)
    finally:
        password_postgres.drop_database(params)

    assert not check.ok and check.field == "user"
    assert "may not create schemas" in check.reason
    assert f'GRANT CREATE ON DATABASE "{params.database}" TO "{params.user}"' in check.reason


def test_ssl_required_of_a_server_without_ssl_is_named(user_database):
    check = private.test_connection(dataclasses.replace(user_database, sslmode="require"))

    assert not check.ok and check.field == "sslmode"
    assert "does not support SSL" in check.reason


@pytest.mark.parametrize("host", ["/var/run/postgresql", "@abstract", "a.example,b.example"])
def test_a_socket_path_or_a_host_list_is_refused_before_connecting(user_database, host):
    check = private.test_connection(dataclasses.replace(user_database, host=host))

    assert not check.ok and check.field == "host"
    assert "no socket path" in check.reason


def test_a_url_gives_the_same_parts():
    params = DatabaseParams.from_url(
        "postgresql://app:s%40cret@db.example.com:6543/shop?sslmode=require"
    )

    assert params == DatabaseParams("db.example.com", 6543, "shop", "app", "s@cret", "require")


def test_a_superuser_is_refused_for_a_role_of_its_own(password_postgres):
    """The runtime would hold the connection on the tenant's behalf: a superuser's reaches
    every database of that PostgreSQL server."""
    superuser = DatabaseParams(
        password_postgres.host, password_postgres.port, "postgres", "postgres",
        SUPERUSER_PASSWORD, "disable",
    )  # fmt: skip

    check = private.test_connection(superuser)

    assert not check.ok
    assert check.field == "user"
    assert "postgres is a superuser of that PostgreSQL server" in check.reason
    assert SUPERUSER_PASSWORD not in check.reason


def test_the_platforms_own_database_server_is_refused_by_any_of_its_names(settings, user_database):
    """A tenant must never reach the console's roles through the platform's runtime (where
    local connections are trusted, any role would do): its database server is refused,
    whichever name or address reaches it, before any connection."""
    settings.PRIVATE_DATABASE_DENY = [f"localhost:{user_database.port}"]

    for host in ("127.0.0.1", "localhost"):
        check = private.test_connection(dataclasses.replace(user_database, host=host))

        assert not check.ok
        assert check.field == "host"
        assert "this platform's own database server" in check.reason
    settings.PRIVATE_DATABASE_DENY = [f"localhost:{user_database.port + 1}"]  # another port
    assert private.test_connection(user_database).ok
    settings.PRIVATE_DATABASE_DENY = []
    assert private.test_connection(user_database).ok


def test_by_default_the_consoles_own_database_server_is_refused():
    from django.conf import settings

    own = settings.DATABASES["default"]
    params = DatabaseParams(
        own["HOST"] or "localhost", int(own["PORT"] or 5432), own["NAME"], "postgres", "", "prefer"
    )

    check = private.test_connection(params)

    assert not check.ok
    assert check.field == "host"
    if params.host.startswith("/"):  # a socket path: refused before anything else
        assert "no socket path" in check.reason
    else:
        assert "this platform's own database server" in check.reason
