"""Configuration in Prisma's format, with Refract's additions, read into tenants."""

from __future__ import annotations

import pytest

from runtime.config import ConfigError, load_config

PRISMA_CONFIG = """
port: 4466
managementApiSecret: my-secret
databases:
  default:
    connector: postgres
    host: postgres
    port: 5432
    user: prisma
    password: prisma
    migrations: true
"""


def test_a_prisma_users_config_works_unchanged() -> None:
    config = load_config({"PRISMA_CONFIG": PRISMA_CONFIG})
    assert config.port == 4466
    (server,) = config.servers
    assert server.auth.management_secret == "my-secret"
    assert server.auth.management_public_key is None
    assert server.database.host == "postgres"
    assert server.database.database == "prisma"
    assert server.database.management_schema == "management"
    assert server.sandbox is None
    assert config.server_for_host("anything.example.com:4466") is server


def test_refract_additions_sit_beside_prismas_keys() -> None:
    text = PRISMA_CONFIG + (
        "managementPublicKey: |\n  -----BEGIN PUBLIC KEY-----\n  abc\n  -----END PUBLIC KEY-----\n"
        "redisUrl: redis://127.0.0.1:6379/0\n"
        "sandbox: {rate: 5, perSeconds: 1, maxWaiting: 3, storageMb: 10}\n"
        "limits: {datamodelBytes: 2000}\n"
    )
    config = load_config({"PRISMA_CONFIG": text})
    (server,) = config.servers
    assert server.auth.management_public_key.startswith("-----BEGIN PUBLIC KEY-----")
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    assert server.sandbox.rate == 5
    assert server.sandbox.storage_bytes == 10 * 1024 * 1024
    assert server.limits.datamodel_bytes == 2000


def test_the_api_cache_holds_128_datamodels_unless_configured() -> None:
    assert load_config({"PRISMA_CONFIG": PRISMA_CONFIG}).api_cache_size == 128
    text = PRISMA_CONFIG + "apiCacheSize: 500\n"
    assert load_config({"PRISMA_CONFIG": text}).api_cache_size == 500


def test_a_socket_directory_is_a_valid_host() -> None:
    text = (
        "databases:\n  default:\n    connector: postgres\n    host: /tmp/pg\n    user: postgres\n"
    )
    (server,) = load_config({"PRISMA_CONFIG": text}).servers
    assert "host=/tmp/pg" in server.database.conninfo()


def test_the_config_can_come_from_a_file(tmp_path) -> None:
    path = tmp_path / "prisma.yml"
    path.write_text(PRISMA_CONFIG)
    assert load_config({"PRISMA_CONFIG_PATH": str(path)}).servers[0].database.user == "prisma"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port: 4466", "`databases` must have a `default` entry"),
        ("databases: {default: {connector: mysql}}", "must be `postgres`"),
        ("port: abc\ndatabases: {default: {connector: postgres}}", "`port` must be an integer"),
        ("databases: {default: {connector: postgres, connectionLimit: 1}}", "connectionLimit"),
        ("managementPublicKey: nope\ndatabases: {default: {connector: postgres}}", "PEM"),
        ("apiCacheSize: 0\ndatabases: {default: {connector: postgres}}", "`apiCacheSize` must be"),
        ("apiCacheSize: lots\ndatabases: {default: {connector: postgres}}", "`apiCacheSize`"),
    ],
)
def test_bad_values_fail_loudly_with_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"PRISMA_CONFIG": text})


def test_no_config_at_all_is_an_error() -> None:
    with pytest.raises(ConfigError, match="PRISMA_CONFIG"):
        load_config({})


def test_tenants_are_chosen_by_host_name_with_a_catch_all() -> None:
    from dataclasses import replace

    from runtime.config import RuntimeConfig

    (default,) = load_config({"PRISMA_CONFIG": PRISMA_CONFIG}).servers
    private = replace(default, name="acme", hosts=("acme.example.com",))
    config = RuntimeConfig(servers=(default, private))
    assert config.server_for_host("acme.example.com:4466") is private
    assert config.server_for_host("ACME.example.com") is private
    assert config.server_for_host("localhost:4466") is default
    assert RuntimeConfig(servers=(private,)).server_for_host("localhost") is None


def test_sandbox_limits_need_a_redis_url() -> None:
    with pytest.raises(ConfigError, match="`sandbox` needs `redisUrl`"):
        load_config({"PRISMA_CONFIG": PRISMA_CONFIG + "sandbox: {rate: 5}\n"})


def test_a_storage_cap_can_be_a_fraction_of_a_megabyte() -> None:
    text = PRISMA_CONFIG + "redisUrl: redis://127.0.0.1:6379/0\nsandbox: {storageMb: 0.25}\n"

    (server,) = load_config({"PRISMA_CONFIG": text}).servers

    assert server.sandbox.storage_bytes == 256 * 1024
