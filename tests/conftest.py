"""Personas and small factories shared by every test.

Tests run against the real PostgreSQL and Redis that `make test` provides (embedded or from
DATABASE_URL / REDIS_URL). Each test gets its own Redis key prefix, so throttle counters never
leak between tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.test import Client

from accounts import services, throttle
from accounts.models import Membership, Role, User, Workspace

pytest_plugins = ["tests.support.browser"]  # Chromium fixtures: browser, new_page

# The tiers of pyproject's markers: `browser`, `node` and `multiprocess` are set by the modules
# that need them; `pg` here, for every test that asks for a database. A fast loop:
#   make test ARGS="-m 'not browser and not node'"
PG_FIXTURES = frozenset({"db", "transactional_db", "django_db_setup", "database", "live_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses_pg = PG_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses_pg or item.get_closest_marker("django_db") is not None:
            item.add_marker(pytest.mark.pg)


PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def isolated_redis(settings) -> Iterator[None]:
    prefix = f"refract-test-{secrets.token_hex(6)}"
    settings.REDIS_KEY_PREFIX = prefix
    # Unit tests poll without waiting; the end-to-end CLI tests turn the long poll back on.
    settings.CLI_LOGIN_HOLD_SECONDS = 0
    # DRF's rate limits live in the cache: give each test its own counters there too.
    previous, cache.key_prefix = cache.key_prefix, prefix
    yield
    cache.key_prefix = previous
    redis = throttle.client()
    keys = list(redis.scan_iter(f"{prefix}:*"))
    if keys:
        redis.delete(*keys)


@dataclass
class Persona:
    user: User
    password: str = PASSWORD

    @property
    def email(self) -> str:
        return self.user.email


def make_user(
    email: str | None = None,
    name: str = "Test User",
    password: str = PASSWORD,
    *,
    verified: bool = True,
) -> User:
    """Sign up through the real workflow; `verified` then proves the address, as its link does."""
    email = email or f"user-{secrets.token_hex(4)}@example.com"
    user = services.sign_up(email=email, name=name, password=password)
    assert user is not None, f"{email} already has an account"
    if verified:
        services.verify_email(user)
    return user


@pytest.fixture
def team(db) -> Workspace:
    """A team workspace with an owner, an admin and a member (see the persona fixtures)."""
    owner = make_user("owner@example.com", "Olivia Owner")
    workspace = services.create_workspace(user=owner, name="Acme", slug="acme")
    admin = make_user("admin@example.com", "Adam Admin")
    member = make_user("member@example.com", "Mia Member")
    Membership.objects.create(workspace=workspace, user=admin, role=Role.ADMIN)
    Membership.objects.create(workspace=workspace, user=member, role=Role.MEMBER)
    return workspace


def _persona(email: str) -> Persona:
    return Persona(User.objects.get(email=email))


@pytest.fixture
def owner(team: Workspace) -> Persona:
    return _persona("owner@example.com")


@pytest.fixture
def admin(team: Workspace) -> Persona:
    return _persona("admin@example.com")


@pytest.fixture
def member(team: Workspace) -> Persona:
    return _persona("member@example.com")


@pytest.fixture
def outsider(db) -> Persona:
    """Someone with an account and a workspace of their own, but nothing to do with Acme."""
    return Persona(make_user("outsider@example.com", "Otto Outsider"))


def client_for(persona: Persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


@pytest.fixture
def owner_client(owner: Persona) -> Client:
    return client_for(owner)


@pytest.fixture
def member_client(member: Persona) -> Client:
    return client_for(member)


@pytest.fixture
def admin_client(admin: Persona) -> Client:
    return client_for(admin)


@pytest.fixture
def outsider_client(outsider: Persona) -> Client:
    return client_for(outsider)
