"""Service endpoint paths and request ids: pure functions of the HTTP face."""

from __future__ import annotations

import pytest

from runtime.app import service_route
from runtime.ids import cuid


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/", ("default", "default", None)),
        ("/svc", ("svc", "default", None)),
        ("/svc/dev", ("svc", "dev", None)),
        ("/svc/dev/", ("svc", "dev", None)),
        ("/ws/svc/dev", ("ws~svc", "dev", None)),
        ("/svc/dev/private", ("svc", "dev", "private")),
        ("/ws/svc/dev/_datamodel", ("ws~svc", "dev", "_datamodel")),
        ("/export", ("default", "default", "export")),
        ("/a/b/c/d", None),
    ],
)
def test_service_paths_follow_prisma(path: str, route: tuple | None) -> None:
    assert service_route(path) == route


def test_ids_are_cuids() -> None:
    ids = [cuid() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 25 and i.startswith("c") for i in ids)
