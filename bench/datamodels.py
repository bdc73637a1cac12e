"""Deterministic, realistic datamodels for the many-services bench and the schema tests.

`datamodel(k, types)` is the same text every time for the same arguments, and two values of `k`
give two distinct APIs (type and field names carry `k`). Each has what real datamodels have:
an `Item` type every datamodel shares (the bench queries it), enums, unique fields, defaults,
`@createdAt`/`@updatedAt`, scalar lists, one-to-many relations stored inline, many-to-many
relations in link tables, an optional one-to-one and a self relation.
"""

from __future__ import annotations

import random

SCALARS = ("String", "Int", "Float", "Boolean", "DateTime", "Json")
WORDS = (
    "title", "label", "code", "status", "total", "price", "rank", "notes", "email", "slug",
    "color", "weight", "score", "city", "region", "due", "opened", "active", "archived", "body",
)  # fmt: skip


def types_for(k: int, count: int) -> int:
    """How many types datamodel `k` of `count` has: 5 to 30, spread evenly over `k`."""
    if count <= 1:
        return 30
    return 5 + round(25 * (k % count) / (count - 1))


def datamodel(k: int, types: int) -> str:
    """A datamodel of `types` types (5 or more, the first being `Item`) and two enums."""
    if types < 5:
        raise ValueError("a generated datamodel has at least 5 types")
    rng = random.Random(k * 7919 + types)  # noqa: S311 (reproducible, not secret)
    names = ["Item", *(f"T{k}x{t}" for t in range(1, types))]
    enums = [f"E{k}x{e}" for e in range(2)]
    blocks = [
        f"enum {enum} {{\n" + "".join(f"  V{v}\n" for v in range(rng.randint(2, 6))) + "}"
        for enum in enums
    ]
    fields: dict[str, list[str]] = {name: [] for name in names}
    fields["Item"] += ["name: String!", "count: Int", f"note{k}: String"]
    for i, name in enumerate(names):
        own = fields[name]
        if i:
            own.append(f"{WORDS[i % len(WORDS)]}{k}: String! @unique")
        for w in rng.sample(WORDS, rng.randint(3, 8)):
            scalar = rng.choice(SCALARS)
            # `Item` has no required field beyond `name` (the bench inserts its rows in SQL).
            required = "!" if i and scalar != "Json" and rng.random() < 0.3 else ""
            default = ""
            if required and scalar == "Int":
                default = " @default(value: 0)"
            elif required and scalar == "Boolean":
                default = " @default(value: false)"
            own.append(f"{w}: {scalar}{required}{default}")
        own.append(f"kind: {rng.choice(enums)}")
        if rng.random() < 0.3:
            own.append("tags: [String] @scalarList(strategy: RELATION)")
        own += ["createdAt: DateTime! @createdAt", "updatedAt: DateTime! @updatedAt"]
    # Relations: each type after the first belongs to an earlier one (one-to-many, inline);
    # every third has a many-to-many with its neighbour; one self relation; one one-to-one.
    for i in range(1, types):
        parent = names[rng.randrange(i)]
        relation = f"R{k}x{i}"
        fields[names[i]].append(f'parent: {parent} @relation(name: "{relation}", link: INLINE)')
        fields[parent].append(f'children{i}: [{names[i]}!]! @relation(name: "{relation}")')
        if i % 3 == 0:
            other = names[i - 1]
            link = f"M{k}x{i}"
            fields[names[i]].append(f'peers{i}: [{other}!]! @relation(name: "{link}", link: TABLE)')
            fields[other].append(f'peersOf{i}: [{names[i]}!]! @relation(name: "{link}")')
    fields[names[1]].append(f'next: {names[1]} @relation(name: "Next{k}", link: INLINE)')
    fields["Item"].append(f'detail: {names[2]} @relation(name: "Detail{k}", link: INLINE)')
    fields[names[2]].append(f'detailOf: Item @relation(name: "Detail{k}")')
    for name in names:
        body = "".join(f"  {f}\n" for f in ["id: ID! @id", *fields[name]])
        blocks.append(f"type {name} {{\n{body}}}")
    return "\n\n".join(blocks) + "\n"
