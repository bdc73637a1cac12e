import json
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from graphql import GraphQLError, parse, validate
from graphql import execute as execute_document
from graphql.language import DocumentNode

from accounts import audit, session_keys, throttle
from compat.schema import Context, schema

MAX_DOCUMENT_CHARS = 20_000
_MINUTE = timedelta(minutes=1)


def error(message: str, status: int = 200, **headers: str) -> JsonResponse:
    response = JsonResponse({"data": None, "errors": [{"message": message}]}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


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


def _rate_limited(request: HttpRequest) -> JsonResponse | None:
    name = f"cloud-api:{audit.client_address(request)}"
    verdict = throttle.check_counter(name, settings.CLOUD_API_RATE_PER_MINUTE, _MINUTE)
    if not verdict.allowed:
        return error(
            "Too many requests. Slow down.", status=429, **{"Retry-After": str(verdict.retry_after)}
        )
    throttle.count(name, _MINUTE)
    return None


@csrf_exempt
def cloud_api(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return error("The cloud API answers GraphQL over POST (application/json).", status=405)
    limited = _rate_limited(request)
    if limited:
        return limited
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return error("The body is not valid JSON.", status=400)
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return error("Send a JSON object with a `query` string.", status=400)
    query, variables = body["query"], body.get("variables") or {}
    if len(query) > MAX_DOCUMENT_CHARS:
        return error(f"The query is longer than {MAX_DOCUMENT_CHARS} characters.", status=413)
    if not isinstance(variables, dict):
        return error("`variables` must be a JSON object.", status=400)
    try:
        document: DocumentNode = parse(query)
    except GraphQLError as exc:
        return error(f"Syntax error: {exc.message}", status=400)
    # No depth limit is needed: the schema has no cycles, so no document nests deeper than 7.
    problems = validate(schema, document)
    if problems:
        return JsonResponse({"data": None, "errors": [p.formatted for p in problems]}, status=400)
    result = execute_document(
        schema,
        document,
        variable_values=variables,
        operation_name=body.get("operationName"),
        context_value=_context(request),
    )
    payload: dict = {"data": result.data}
    if result.errors:
        payload["errors"] = [{"message": e.message, "path": e.path} for e in result.errors]
    return JsonResponse(payload)
