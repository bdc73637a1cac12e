"""The OpenCRUD schema of a service, generated exactly as Prisma generates it (reference 5).

A port of `prisma-generate-schema` 1.34 (the generator the Prisma CLI and the server agree on):
the same types, the same names, the same rules for leaving out input types that would be empty.
Each generator method mirrors one upstream generator; `empty_*` mirrors its `wouldBeEmpty`.
Types are registered the first time they are referenced, as upstream does, so the printed schema
holds exactly the reachable types. The deliberate differences are the Scala server's (the
`node_interface` variant, reference 5.9): model types with an `id: ID!` field declare
`implements Node`, and `scalar Json` is declared even when no field uses it.
"""

from runtime.opencrud.sdl.generator import opencrud_sdl, opencrud_types
from runtime.opencrud.sdl.registry import FieldDef, TypeDef

__all__ = ["FieldDef", "TypeDef", "opencrud_sdl", "opencrud_types"]
