"""The cloud API's HTTP face: one GraphQL POST endpoint, answered in the Prisma format.

A document may hold only what the Prisma CLI sends (protocol reference section 2): one
operation with one root field. Aliases and batches would let one request start hundreds of
logins or hold a worker thread once per aliased poll.
"""

import json
import logging
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from graphql import GraphQLError, parse, validate
from graphql import execute as execute_document
from graphql.language import DocumentNode, FieldNode, OperationDefinitionNode, Visitor, visit

from accounts import audit, session_keys, throttle
from compat.schema import Context, schema

MAX_DOCUMENT_CHARS = 20_000
# The CLI's largest document (the cluster list, section 2.5) selects 15 fields.
MAX_FIELDS = 100
_MINUTE = timedelta(minutes=1)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")

log = logging.getLogger(__name__)


def error(
    message: str, status: int = 200, *, request_id: str = "", code: str = "", **headers: str
) -> JsonResponse:
    """An answer in the Prisma format: `errors[{message, code?, requestId}]`."""
    entry: dict = {"message": message}
    if code:
        entry["code"] = code
    if request_id:
        entry["requestId"] = request_id
    response = JsonResponse({"data": None, "errors": [entry]}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _request_id(request: HttpRequest) -> str:
    """The id a proxy gave this request (X-Request-Id), or a new one: it is in the answer and
    in the log line, so a user's error message leads to the server's traceback."""
    given = request.META.get("HTTP_X_REQUEST_ID", "")
    return given if _REQUEST_ID.fullmatch(given) else f"cloud:{secrets.token_hex(10)}"


def _context(request: HttpRequest) -> Context:
    """A bad or stale key is not an error here: `me` is then null and `requestCloudToken`
    works, which is how the CLI recovers (protocol reference 2.2, 2.11)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        check = session_keys.authenticate(token.strip(), audit.client_address(request))
        if check.key is not None:
            return Context(request=request, user=check.key.user, key=check.key)
    return Context(request=request, user=None, key=None)


def _rate_limited(request: HttpRequest, request_id: str) -> JsonResponse | None:
    name = f"cloud-api:{audit.client_address(request)}"
    verdict = throttle.check_counter(name, settings.CLOUD_API_RATE_PER_MINUTE, _MINUTE)
    if not verdict.allowed:
        return error(
            "Too many requests. Slow down.",
            status=429,
            request_id=request_id,
            code="too_many_requests",
            **{"Retry-After": str(verdict.retry_after)},
        )
    throttle.count(name, _MINUTE)
    return None


class _FieldCounter(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.fields = 0

    def enter_field(self, *_: object) -> None:
        self.fields += 1


def shape_problem(document: DocumentNode) -> str | None:
    """Why this document is more than the Prisma CLI ever sends, or None."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        return "Send exactly one operation per request."
    roots = operations[0].selection_set.selections
    if len(roots) != 1 or not isinstance(roots[0], FieldNode):
        return "An operation selects exactly one root field (no aliases or fragments there)."
    counter = _FieldCounter()
    visit(document, counter)
    if counter.fields > MAX_FIELDS:
        return f"The document selects more than {MAX_FIELDS} fields."
    return None


def _result_errors(errors: list[GraphQLError], request_id: str) -> list[dict]:
    """Errors a resolver raised on purpose keep their message; anything else is logged with
    its traceback and answered as the Prisma server answers an internal error."""
    answered = []
    for problem in errors:
        original = problem.original_error
        if original is not None and not isinstance(original, GraphQLError):
            log.error(
                "cloud API request %s failed in %s",
                request_id,
                ".".join(str(p) for p in problem.path or []),
                exc_info=(type(original), original, original.__traceback__),
            )
            answered.append(
                {"message": _internal_message(request_id), "path": problem.path,
                 "requestId": request_id}
            )  # fmt: skip
            continue
        entry: dict = {"message": problem.message, "path": problem.path}
        code = (problem.extensions or {}).get("code")
        if code:
            entry["code"] = code
        entry["requestId"] = request_id
        answered.append(entry)
    return answered


def _internal_message(request_id: str) -> str:
    return (
        "Whoops. Looks like an internal server error. Search your server logs for request ID: "
        f"{request_id}"
    )


@csrf_exempt
def cloud_api(request: HttpRequest) -> JsonResponse:
    request_id = _request_id(request)
    try:
        response = _answer(request, request_id)
    except Exception:
        log.exception("cloud API request %s failed", request_id)
        response = error(_internal_message(request_id), status=500, request_id=request_id)
    response["Request-Id"] = request_id
    return response


def _answer(request: HttpRequest, request_id: str) -> JsonResponse:
    if request.method != "POST":
        return error(
            "The cloud API answers GraphQL over POST (application/json).",
            status=405,
            request_id=request_id,
        )
    limited = _rate_limited(request, request_id)
    if limited:
        return limited
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return error("The body is not valid JSON.", status=400, request_id=request_id)
    if isinstance(body, list):
        return error(
            "Batched requests are not supported: send one operation per request.",
            status=400,
            request_id=request_id,
        )
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return error("Send a JSON object with a `query` string.", status=400, request_id=request_id)
    query, variables = body["query"], body.get("variables") or {}
    if len(query) > MAX_DOCUMENT_CHARS:
        return error(
            f"The query is longer than {MAX_DOCUMENT_CHARS} characters.",
            status=413,
            request_id=request_id,
        )
    if not isinstance(variables, dict):
        return error("`variables` must be a JSON object.", status=400, request_id=request_id)
    operation_name = body.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        return error("`operationName` must be a string.", status=400, request_id=request_id)
    try:
        document: DocumentNode = parse(query)
    except GraphQLError as exc:
        return error(f"Syntax error: {exc.message}", status=400, request_id=request_id)
    problem = shape_problem(document)
    if problem:
        return error(problem, status=400, request_id=request_id)
    # No depth limit is needed: the schema has no cycles, so no document nests deeper than 7.
    problems = validate(schema, document)
    if problems:
        return JsonResponse(
            {"data": None, "errors": [{**p.formatted, "requestId": request_id} for p in problems]},
            status=400,
        )
    result = execute_document(
        schema,
        document,
        variable_values=variables,
        operation_name=operation_name,
        context_value=_context(request),
    )
    payload: dict = {"data": result.data}
    if result.errors:
        payload["errors"] = _result_errors(result.errors, request_id)
    return JsonResponse(payload)
