"""Errors the runtime answers in Prisma's format: `{message, code, requestId}`.

Codes and texts follow the Scala server (`deploy/schema/Errors.scala`) so that the CLI, which
matches on some of them (3015 with "decoded", 4000), behaves as it does against Prisma.
"""

from __future__ import annotations


class PrismaError(Exception):
    """A user-facing error with Prisma's numeric code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidToken(PrismaError):
    def __init__(self, reason: str) -> None:
        super().__init__(3015, f"Authentication token is invalid: {reason}")


def project_not_found(name: str, stage: str) -> PrismaError:
    return PrismaError(4000, f"No service with name '{name}' and stage '{stage}' found")


def project_exists(name: str, stage: str) -> PrismaError:
    return PrismaError(4005, f"Service with name '{name}' and stage '{stage}' already exists")
