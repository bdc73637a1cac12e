"""The servers' endpoints in the OpenAPI schema: it generates without a warning (each one is a
place where the schema would say less than the code does), and lists every new path with the
answers a client must handle."""

import json

from django.core.management import call_command

WORKSPACE = "/api/v1/workspaces/{slug}"


def generate(tmp_path) -> dict:
    path = tmp_path / "schema.json"
    call_command(
        "spectacular", "--fail-on-warn", "--validate", "--format", "openapi-json", "--file", path
    )
    return json.loads(path.read_text())


def test_the_schema_generates_without_warnings_and_lists_the_servers_endpoints(tmp_path):
    schema = generate(tmp_path)

    answers = {
        (method, path.removeprefix(WORKSPACE)): sorted(operation["responses"])
        for path, operations in schema["paths"].items()
        if path.startswith(WORKSPACE)
        for method, operation in operations.items()
    }
    common = ["401", "403", "404", "406", "429"]
    posted = ["400", "401", "403", "404", "406", "413", "429"]
    assert answers == {
        ("get", "/servers"): ["200", *common],
        ("post", "/servers"): ["202", *posted],
        ("get", "/servers/{server_id}"): ["200", *common],
        ("get", "/services"): ["200", *common],
        ("post", "/services"): ["201", *posted],
        ("get", "/services/{service_id}"): ["200", *common],
        ("delete", "/services/{service_id}"): ["202", *common],
        ("post", "/services/{service_id}/token"): ["201", "400", *common],
        ("get", "/services/{service_id}/deploys"): ["200", *common],
        ("post", "/services/{service_id}/deploys"): ["202", *posted],
        ("get", "/deploys/{deploy_id}"): ["200", *common],
        ("post", "/deploys/{deploy_id}/cancel"): ["200", "400", *common],
        ("post", "/deploys/{deploy_id}/redeploy"): ["202", *posted],
    }


def test_the_schema_describes_bodies_ids_and_pages(tmp_path):
    schema = generate(tmp_path)
    components = schema["components"]["schemas"]
    paths = schema["paths"]

    create = components["ServiceCreate"]
    assert create["required"] == ["name", "server"]
    assert create["properties"]["server"]["format"] == "uuid"
    assert components["StarterEnum"]["enum"] == ["blank", "blog", "shop"]
    created = paths[f"{WORKSPACE}/services"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/CreatedService")
    assert {"deploy", "token"} <= set(components["CreatedService"]["properties"])
    history = paths[f"{WORKSPACE}/services/{{service_id}}/deploys"]["get"]
    assert {p["name"] for p in history["parameters"]} == {
        "slug",
        "service_id",
        "cursor",
        "page_size",
    }
    page = history["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert page.endswith("/PaginatedDeployList")
    deploy = components["DeployDetail"]["properties"]
    assert {"status", "revision", "steps", "errors", "warnings", "reason", "stuck"} <= set(deploy)
    assert {"migration_status", "applied", "started_at", "finished_at", "duration"} <= set(deploy)
    assert components["DeployStatusEnum"]["enum"] == [
        "queued", "running", "succeeded", "failed", "cancelled",
    ]  # fmt: skip
    assert "services_count" in components["Server"]["properties"]
    for path in [f"{WORKSPACE}/deploys/{{deploy_id}}", f"{WORKSPACE}/services/{{service_id}}"]:
        (param,) = [
            p for p in paths[path]["get"]["parameters"] if p["in"] == "path" and p["name"] != "slug"
        ]
        assert param["schema"] == {"type": "string", "format": "uuid"}
