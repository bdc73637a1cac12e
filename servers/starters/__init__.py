"""Starter datamodels: what a new service is deployed with, so one click gives a working endpoint.

Each starter is a `.prisma` file beside this module (Prisma 1 datamodel syntax 1.1, commented
for a newcomer) and a small query the service page shows as its example `curl`. The files are
package data (`pyproject.toml`), read through `importlib.resources` so an installed project
finds them as a checkout does.

The example queries hold no quotes of either kind: the page puts them inside a JSON string
inside a single-quoted shell argument, where a quote would need escaping twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

__all__ = ["STARTERS", "Starter", "UnknownStarter", "get_starter"]


@dataclass(frozen=True)
class Starter:
    key: str
    title: str
    description: str
    datamodel: str
    example_query: str


class UnknownStarter(ValueError):
    pass


def _datamodel(key: str) -> str:
    return resources.files(__name__).joinpath(f"{key}.prisma").read_text(encoding="utf-8")


# In the order the console's picker shows them.
STARTERS: tuple[Starter, ...] = (
    Starter(
        key="blank",
        title="Blank",
        description="One type, Item, to rename and grow into your own datamodel.",
        datamodel=_datamodel("blank"),
        example_query="{ items(first: 5) { id name done createdAt } }",
    ),
    Starter(
        key="blog",
        title="Blog",
        description="Users, posts, comments and tags: one-to-many and many-to-many relations.",
        datamodel=_datamodel("blog"),
        example_query="{ posts(first: 5) { id title author { name } tags { name } } }",
    ),
    Starter(
        key="shop",
        title="Shop",
        description="Customers, products in categories, orders with lines: prices, stock, Json.",
        datamodel=_datamodel("shop"),
        example_query=(
            "{ products(first: 5, orderBy: name_ASC) { id name price stock categories { name } } }"
        ),
    ),
)

_BY_KEY = {starter.key: starter for starter in STARTERS}


def get_starter(key: str) -> Starter:
    """The starter named `key`; an unknown key is a caller's mistake, said with the choices."""
    try:
        return _BY_KEY[key]
    except (KeyError, TypeError):
        choices = ", ".join(_BY_KEY)
        raise UnknownStarter(f"unknown starter {key!r}: choose one of {choices}") from None
