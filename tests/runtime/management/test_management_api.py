"""The management API of a real runtime process against a real PostgreSQL database."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from tests.runtime.conftest import Database, Runtime

pytestmark = [pytest.mark.multiprocess]

ADD = """mutation($name: String! $stage: String! $secrets: [String!]) {
  addProject(input: {name: $name, stage: $stage, secrets: $secrets}) { project { name stage } }
}"""
DEPLOY = """mutation($name: String!, $stage: String!, $types: String!, $dryRun: Boolean,
                   $secrets: [String!], $force: Boolean) {
  deploy(input: {name: $name, stage: $stage, types: $types, dryRun: $dryRun, secrets: $secrets,
                 force: $force}) {
    errors { type field description }
    warnings { type field description }
    migration { revision status applied steps { type } }
    steps {
      type
      ... on CreateModel { name }
      ... on CreateField { model name }
      ... on DeleteModel { name }
      ... on CreateRelation { name after { type ... on Inline { model column } } }
    }
  }
}"""
STATUS = """query($name: String!, $stage: String!) {
  migrationStatus(name: $name, stage: $stage) {
    projectId revision status applied rolledBack errors
  }
}"""

TODO = "type Todo { id: ID! @id  title: String! }"


def add(runtime: Runtime, token: str, name: str, stage: str = "dev", **extra: Any) -> dict:
    return runtime.management(ADD, {"name": name, "stage": stage, **extra}, token)


def deploy(
    runtime: Runtime, token: str, name: str, types: str, stage: str = "dev", **extra: Any
) -> dict:
    answer = runtime.management(
        DEPLOY, {"name": name, "stage": stage, "types": types, **extra}, token
    )
    assert "errors" not in answer, answer
    return answer["data"]["deploy"]


def test_server_info_answers_without_a_token(runtime: Runtime) -> None:
    answer = runtime.management("{ serverInfo { version commit primaryConnector } }")
    info = answer["data"]["serverInfo"]
    assert info["version"].startswith("1.34.")
    assert info["primaryConnector"] == "postgres"


def test_status_and_request_ids(runtime: Runtime) -> None:
    assert runtime.get("/status").body == "OK"
    response = runtime.post("/management", {"query": "{ serverInfo { version } }"})
    assert response.headers["request-id"].startswith("local:c")


def test_introspection_exposes_what_the_cli_probes_for(runtime: Runtime) -> None:
    answer = runtime.management(
        "{ __schema { types { kind name fields { name } inputFields { name } } } }"
    )
    types = {t["name"]: t for t in answer["data"]["__schema"]["types"]}
    assert "steps" in {f["name"] for f in types["DeployPayload"]["fields"]}
    assert "after" in {f["name"] for f in types["CreateRelation"]["fields"]}
    assert "noMigration" in {f["name"] for f in types["DeployInput"]["inputFields"]}
    assert {"LinkTable", "Inline", "UpdateSecrets"} <= set(types)


def test_a_first_deploy_creates_tables_and_reports_success(
    runtime: Runtime, token: str, service_name: str, database: Database
) -> None:
    assert add(runtime, token, service_name) == {
        "data": {"addProject": {"project": {"name": service_name, "stage": "dev"}}}
    }
    schema = f"{service_name}$dev"
    assert schema in database.schemas()
    payload = deploy(runtime, token, service_name, TODO)
    assert payload["errors"] == payload["warnings"] == []
    assert payload["migration"]["revision"] == 2
    assert payload["migration"]["status"] == "SUCCESS"
    assert payload["migration"]["applied"] == 3
    assert [s["type"] for s in payload["steps"]] == ["CreateModel", "CreateField", "CreateField"]
    assert database.tables(schema) == {"Todo"}
    status = runtime.management(STATUS, {"name": service_name, "stage": "dev"}, token)
    assert status["data"]["migrationStatus"] == {
        "projectId": f"{service_name}$dev",
        "revision": 2,
        "status": "SUCCESS",
        "applied": 3,
        "rolledBack": 0,
        "errors": [],
    }
    project = runtime.management(
        'query($n: String!) { project(name: $n, stage: "dev") { name stage datamodel } }',
        {"n": service_name},
        token,
    )
    assert project["data"]["project"]["datamodel"] == TODO


def test_an_unchanged_datamodel_gives_no_migration(
    runtime: Runtime, token: str, service_name: str
) -> None:
    add(runtime, token, service_name)
    deploy(runtime, token, service_name, TODO)
    again = deploy(runtime, token, service_name, TODO)
    assert again == {"errors": [], "warnings": [], "migration": None, "steps": []}


def test_a_dry_run_plans_and_changes_nothing(
    runtime: Runtime, token: str, service_name: str, database: Database
) -> None:
    add(runtime, token, service_name)
    payload = deploy(runtime, token, service_name, TODO, dryRun=True)
    assert payload["migration"] is None
    assert len(payload["steps"]) == 3
    assert database.tables(f"{service_name}$dev") == set()


def test_destructive_changes_on_data_need_force(
    runtime: Runtime, token: str, service_name: str, database: Database
) -> None:
    schema = f"{service_name}$dev"
    add(runtime, token, service_name)
    deploy(runtime, token, service_name, TODO + " type Note { id: ID! @id  text: String }")
    with database.connect() as conn:
        conn.execute(f"""INSERT INTO "{schema}"."Note" (id, text) VALUES ('n1', 'keep')""")  # noqa: S608
    refused = deploy(runtime, token, service_name, TODO)
    assert refused["migration"] is None
    assert refused["warnings"] == [
        {
            "type": "Note",
            "field": None,
            "description": "You already have nodes for this model. This change will result in "
            "data loss.",
        }
    ]
    assert refused["steps"] == [{"type": "DeleteModel", "name": "Note"}]
    assert database.tables(schema) == {"Todo", "Note"}
    forced = deploy(runtime, token, service_name, TODO, force=True)
    assert forced["warnings"] == refused["warnings"]
    assert forced["migration"]["revision"] == 3
    assert database.tables(schema) == {"Todo"}


def test_relations_and_lists_get_prisma_tables(
    runtime: Runtime, token: str, service_name: str, database: Database
) -> None:
    schema = f"{service_name}$dev"
    add(runtime, token, service_name)
    payload = deploy(
        runtime,
        token,
        service_name,
        """
        type User { id: ID! @id  posts: [Post]  tags: [String] @scalarList(strategy: RELATION)
                    friends: [User] @relation(name: "Friends") }
        type Post { id: ID! @id  author: User }
        """,
    )
    relations = [s for s in payload["steps"] if s["type"] == "CreateRelation"]
    assert {"name": "PostToUser", "type": "CreateRelation", "after": {
        "type": "Inline", "model": "Post", "column": "author"}} in relations  # fmt: skip
    assert database.tables(schema) == {"User", "Post", "User_tags", "_Friends"}
    assert database.columns(schema, "Post")["author"] == ("character varying", True)


def test_secrets_are_stored_and_sign_project_tokens(
    runtime: Runtime, token: str, service_name: str
) -> None:
    add(runtime, token, service_name, secrets=["first-service-secret-0123456789-abcdef"])
    query = 'query($n: String!) { generateProjectToken(name: $n, stage: "dev") }'
    generated = runtime.management(query, {"n": service_name}, token)["data"]
    claims = jwt.decode(
        generated["generateProjectToken"],
        "first-service-secret-0123456789-abcdef",
        algorithms=["HS256"],
    )
    assert claims["exp"] - claims["nbf"] == 86400
    payload = deploy(
        runtime, token, service_name, TODO, secrets=["other-service-secret-0123456789-abcdef"]
    )
    assert payload["migration"]["steps"][-1] == {"type": "UpdateSecrets"}
    regenerated = runtime.management(query, {"n": service_name}, token)["data"]
    jwt.decode(
        regenerated["generateProjectToken"],
        "other-service-secret-0123456789-abcdef",
        algorithms=["HS256"],
    )
    payload = deploy(runtime, token, service_name, TODO, secrets=None)
    assert [s["type"] for s in payload["migration"]["steps"]] == ["UpdateSecrets"]
    cleared = runtime.management(query, {"n": service_name}, token)["data"]
    assert cleared == {"generateProjectToken": ""}


def test_list_projects_and_migrations(runtime: Runtime, token: str, service_name: str) -> None:
    add(runtime, token, service_name)
    deploy(runtime, token, service_name, TODO)
    projects = runtime.management("{ listProjects { name stage datamodel } }", token=token)
    assert {"name": service_name, "stage": "dev", "datamodel": TODO} in projects["data"][
        "listProjects"
    ]
    migrations = runtime.management(
        'query($n: String!) { listMigrations(name: $n, stage: "dev") { revision status } }',
        {"n": service_name},
        token,
    )
    assert migrations["data"]["listMigrations"] == [
        {"revision": 2, "status": "SUCCESS"},
        {"revision": 1, "status": "SUCCESS"},
    ]


def test_delete_project_drops_its_schema(
    runtime: Runtime, token: str, service_name: str, database: Database
) -> None:
    add(runtime, token, service_name)
    deploy(runtime, token, service_name, TODO)
    answer = runtime.management(
        "mutation($i: DeleteProjectInput!) { deleteProject(input: $i) { project { name } } }",
        {"i": {"name": service_name, "stage": "dev"}},
        token,
    )
    assert answer == {"data": {"deleteProject": {"project": {"name": service_name}}}}
    assert f"{service_name}$dev" not in database.schemas()
    again = runtime.management(
        'query($n: String!) { project(name: $n, stage: "dev") { name } }',
        {"n": service_name},
        token,
    )
    assert again["data"] is None
    assert again["errors"][0]["code"] == 4000
    assert again["errors"][0]["message"] == (
        f"No service with name '{service_name}' and stage 'dev' found"
    )


def test_duplicate_and_reserved_names_get_prisma_codes(
    runtime: Runtime, token: str, service_name: str
) -> None:
    add(runtime, token, service_name)
    duplicate = add(runtime, token, service_name)
    assert duplicate["errors"][0]["code"] == 4005
    assert duplicate["errors"][0]["message"] == (
        f"Service with name '{service_name}' and stage 'dev' already exists"
    )
    assert add(runtime, token, "management")["errors"][0]["code"] == 4006
    assert add(runtime, token, service_name, stage="import")["errors"][0]["code"] == 4007
    assert add(runtime, token, "9lives")["errors"][0]["code"] == 4001
    assert add(runtime, token, service_name, stage="x" * 31)["errors"][0]["code"] == 4002
    # name$stage is the service's PostgreSQL schema, whose names stop at 63 bytes.
    too_long = add(runtime, token, "s" * 60, stage="dev")["errors"][0]
    assert too_long["code"] == 4001
    assert "PostgreSQL allows 63" in too_long["message"]
    assert "errors" not in add(runtime, token, "s" * 59, stage="dev")


def test_deploying_to_an_unknown_service_is_4000(runtime: Runtime, token: str) -> None:
    answer = runtime.management(DEPLOY, {"name": "nobody", "stage": "dev", "types": TODO}, token)
    assert answer["errors"][0]["code"] == 4000


BAD_DATAMODELS = {
    "unknown type": "type Todo { id: ID! @id  owner: User }",
    "duplicate field": "type Todo { id: ID! @id  title: String  title: String }",
    "missing id": "type Todo { title: String }",
    "bad default": "type Todo { id: ID! @id  done: Boolean @default(value: 1) }",
    "unnamed relations": "type A { id: ID! @id  b1: B  b2: B }  type B { id: ID! @id  a: [A] }",
    "reserved name": "type Mutation { id: ID! @id }",
}


def test_bad_datamodels_get_clear_errors_and_change_nothing(
    runtime: Runtime, token: str, service_name: str, database: Database
) -> None:
    add(runtime, token, service_name)
    deploy(runtime, token, service_name, TODO)
    schema = f"{service_name}$dev"
    for label, datamodel in BAD_DATAMODELS.items():
        payload = deploy(runtime, token, service_name, datamodel + " type Extra { id: ID! @id }")
        assert payload["migration"] is None, label
        assert payload["errors"], label
        assert all(e["description"] for e in payload["errors"]), label
        assert database.tables(schema) == {"Todo"}, label
    status = runtime.management(STATUS, {"name": service_name, "stage": "dev"}, token)
    assert status["data"]["migrationStatus"]["revision"] == 2


def test_a_five_megabyte_datamodel_is_refused_clearly(
    runtime: Runtime, token: str, service_name: str, database: Database
) -> None:
    add(runtime, token, service_name)
    fields = "\n".join(f"  field{i}: String" for i in range(250_000))
    datamodel = f"type Big {{\n  id: ID! @id\n{fields}\n}}"
    assert len(datamodel) > 5_000_000
    payload = deploy(runtime, token, service_name, datamodel)
    (error,) = payload["errors"]
    assert error["type"] == "Global"
    assert "larger than this server's limit of 1.0 MB" in error["description"]
    assert database.tables(f"{service_name}$dev") == set()


def test_a_syntax_error_is_3017(runtime: Runtime, token: str, service_name: str) -> None:
    add(runtime, token, service_name)
    answer = runtime.management(
        DEPLOY, {"name": service_name, "stage": "dev", "types": "type {"}, token
    )
    assert answer["errors"][0]["code"] == 3017
    assert "Syntax Error" in answer["errors"][0]["message"]


def test_a_failing_migration_is_rolled_back_and_reported(
    runtime: Runtime, token: str, service_name: str, database: Database
) -> None:
    schema = f"{service_name}$dev"
    add(runtime, token, service_name)
    deploy(runtime, token, service_name, "type T { id: ID! @id  code: String }")
    with database.connect() as conn:
        # A table made behind the server's back: the deploy's CREATE TABLE fails.
        conn.execute(f'CREATE TABLE "{schema}"."U" (id text)')
    payload = deploy(runtime, token, service_name, "type T { id: ID! @id }  type U { id: ID! @id }")
    assert payload["migration"]["status"] == "ROLLBACK_SUCCESS"
    status = runtime.management(STATUS, {"name": service_name, "stage": "dev"}, token)
    assert status["data"]["migrationStatus"]["errors"]
    assert "DuplicateTable" in status["data"]["migrationStatus"]["errors"][0]
    assert "code" in database.columns(schema, "T")  # the column drop was rolled back too


def test_service_endpoints_route_and_check_the_service_token(
    runtime: Runtime, token: str, service_name: str
) -> None:
    unknown = runtime.post(f"/{service_name}/dev", {"query": "{ __typename }"})
    assert unknown.body["errors"][0] == {
        "message": f"Project not found: '{service_name}$dev'",
        "code": 3016,
        "requestId": unknown.headers["request-id"],
    }
    add(runtime, token, service_name, secrets=["service-secret-0123456789-0123456789-ab"])
    deploy(runtime, token, service_name, TODO, secrets=["service-secret-0123456789-0123456789-ab"])
    refused = runtime.post(f"/{service_name}/dev", {"query": "{ todoes { id } }"})
    assert refused.body["errors"][0]["code"] == 3015
    service_token = jwt.encode(
        {"data": {"service": "x@y"}}, "service-secret-0123456789-0123456789-ab", algorithm="HS256"
    )
    answer = runtime.post(f"/{service_name}/dev", {"query": "{ todoes { id } }"}, service_token)
    assert answer.status == 200
    assert answer.body == {"data": {"todoes": []}}
    datamodel = runtime.post(f"/{service_name}/dev/_datamodel", {}, service_token)
    assert datamodel.body == TODO


def test_a_body_over_the_request_limit_is_413(runtime: Runtime, token: str) -> None:
    response = runtime.post("/management", None, token=token, raw=b" " * (17 * 1024 * 1024))
    assert response.status == 413
    assert "larger than this server's limit" in response.body["errors"][0]["message"]


PASSIVE = """mutation($name: String!, $types: String!) {
  deploy(input: {name: $name, stage: "dev", types: $types, noMigration: true}) {
    errors { type field description }
    migration { revision applied }
    steps { type }
  }
}"""


def test_a_passive_deploy_checks_existing_tables_and_changes_none(
    runtime: Runtime, token: str, service_name: str, database: Database
) -> None:
    schema = f"{service_name}$dev"
    datamodel = 'type Legacy @db(name: "legacy") { id: ID! @id  title: String }'
    add(runtime, token, service_name)
    missing = runtime.management(PASSIVE, {"name": service_name, "types": datamodel}, token)
    assert missing["data"]["deploy"]["errors"] == [
        {
            "type": "Legacy",
            "field": None,
            "description": "Could not find the table for the model `Legacy` in the database.",
        }
    ]
    with database.connect() as conn:
        conn.execute(f'CREATE TABLE "{schema}".legacy (id varchar(25) PRIMARY KEY, title text)')
    passive = runtime.management(PASSIVE, {"name": service_name, "types": datamodel}, token)
    assert passive["data"]["deploy"] == {
        "errors": [],
        "migration": {"revision": 2, "applied": 0},
        "steps": [],
    }
    assert database.tables(schema) == {"legacy"}


def test_management_requests_can_be_batched(runtime: Runtime) -> None:
    response = runtime.post(
        "/management",
        [{"query": "{ serverInfo { version } }"}, {"query": "{ serverInfo { commit } }"}],
    )
    assert response.status == 200
    assert [list(item["data"]["serverInfo"]) for item in response.body] == [["version"], ["commit"]]


def test_concurrent_deploys_of_one_service_are_serialised(
    runtime: Runtime, token: str, service_name: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    add(runtime, token, service_name)
    datamodels = [TODO, TODO + " type Tag { id: ID! @id  label: String }"]
    with ThreadPoolExecutor(2) as pool:
        payloads = list(pool.map(lambda t: deploy(runtime, token, service_name, t), datamodels))
    revisions = sorted(p["migration"]["revision"] for p in payloads if p["migration"])
    assert revisions[0] == 2
    migrations = runtime.management(
        'query($n: String!) { listMigrations(name: $n, stage: "dev") { revision status } }',
        {"n": service_name},
        token,
    )["data"]["listMigrations"]
    assert all(m["status"] == "SUCCESS" for m in migrations)
    assert [m["revision"] for m in migrations] == list(range(len(migrations), 0, -1))


def test_unparseable_graphql_is_a_500_like_prisma(runtime: Runtime) -> None:
    response = runtime.post("/management", {"query": "{ serverInfo { version }"})
    assert response.status == 500
    assert "Syntax Error" in response.body["errors"][0]["message"]
    invalid = runtime.post("/management", {"query": "{ serverInfo { nope } }"})
    assert invalid.status == 200
    assert invalid.body["data"] is None
    assert "Cannot query field 'nope'" in invalid.body["errors"][0]["message"]


def test_a_project_reports_what_it_stores(runtime: Runtime, token: str, service_name: str) -> None:
    """Refract's `storageBytes` extension, which the console's sandbox page shows."""
    add(runtime, token, service_name)
    query = 'query($n: String!) { project(name: $n, stage: "dev") { storageBytes } }'
    empty = runtime.management(query, {"n": service_name}, token)["data"]["project"]
    assert empty == {"storageBytes": 0}
    deploy(runtime, token, service_name, TODO)
    deployed = runtime.management(query, {"n": service_name}, token)["data"]["project"]
    assert deployed["storageBytes"] > 0  # its tables and indexes, as the storage cap counts
    listed = runtime.management("{ listProjects { name storageBytes } }", token=token)
    mine = [p for p in listed["data"]["listProjects"] if p["name"] == service_name]
    assert mine == [{"name": service_name, "storageBytes": deployed["storageBytes"]}]
