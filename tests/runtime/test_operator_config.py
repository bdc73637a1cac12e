"""The config's Refract additions for the operator API (`hosts`, `operator`, `sslmode`, several
management keys), and the dev stack's runtime with its operator API."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import jwt
import pytest
import yaml
from cryptography.fernet import Fernet

from runtime.auth import management_grants, verify_operator
from runtime.config import AuthConfig, ConfigError, load_config
from tests.runtime.conftest import ROOT, Database, free_port, make_key_pair

BASE = "databases: {default: {connector: postgres, host: db, user: prisma}}\n"


def config_text(extra: str) -> str:
    return BASE + extra


def test_hosts_and_the_operator_block_are_read() -> None:
    keys = make_key_pair()
    fernet = Fernet.generate_key().decode()
    text = config_text(
        "hosts: [Localhost, 127.0.0.1]\n"
        + yaml.safe_dump(
            {"operator": {"publicKey": keys.public_pem, "encryptionKey": fernet, "idleSeconds": 7}}
        )
    )
    config = load_config({"PRISMA_CONFIG": text})
    (server,) = config.servers
    assert server.hosts == ("localhost", "127.0.0.1")
    assert config.operator is not None
    assert config.operator.public_keys == (keys.public_pem.strip(),)
    assert config.operator.encryption_keys == (fernet,)
    assert config.operator.idle_seconds == 7
    assert load_config({"PRISMA_CONFIG": BASE}).operator is None
    assert load_config({"PRISMA_CONFIG": BASE}).servers[0].hosts == ("*",)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("hosts: []\n", "`hosts` must be a non-empty list"),
        ("hosts: ['bad host']\n", "bad name"),
        ("operator: {encryptionKey: x}\n", "operator.publicKey"),
        ("operator: {publicKey: PUBLIC, encryptionKey: nope}\n", "Fernet"),
        ("operator: {publicKey: PUBLIC}\n", "encryptionKey"),
        ("operator: {publicKey: PUBLIC, encryptionKey: FERNET, idle: 3}\n", "unknown"),
    ],
)
def test_bad_operator_settings_fail_loudly(extra: str, message: str) -> None:
    public = json.dumps(make_key_pair().public_pem)
    extra = extra.replace("PUBLIC", public).replace("FERNET", Fernet.generate_key().decode())
    with pytest.raises(ConfigError, match=message):
        load_config({"PRISMA_CONFIG": config_text(extra)})


@pytest.mark.parametrize(
    ("entry", "sslmode"),
    [("", "prefer"), ("ssl: true", "require"), ("sslmode: verify-full", "verify-full")],
)
def test_sslmode(entry: str, sslmode: str) -> None:
    text = f"databases:\n  default:\n    connector: postgres\n    {entry}\n"
    (server,) = load_config({"PRISMA_CONFIG": text}).servers
    assert server.database.sslmode == sslmode
    assert f"sslmode={sslmode}" in server.database.conninfo()


def test_a_bad_sslmode_fails_loudly() -> None:
    with pytest.raises(ConfigError, match="sslmode"):
        load_config({"PRISMA_CONFIG": "databases: {default: {connector: postgres, sslmode: on}}"})


def rs256(private_pem: str, **claims: object) -> str:
    now = int(time.time())
    return jwt.encode({"exp": now + 60, **claims}, private_pem, algorithm="RS256")


def test_several_management_keys_each_verify_tokens() -> None:
    old, new, stranger = make_key_pair(), make_key_pair(), make_key_pair()
    text = config_text(yaml.safe_dump({"managementPublicKey": old.public_pem + new.public_pem}))
    (server,) = load_config({"PRISMA_CONFIG": text}).servers
    grants = [{"target": "*/*", "action": "*"}]
    for keys in (old, new):
        assert management_grants(server.auth, f"Bearer {rs256(keys.private_pem, grants=grants)}")
    with pytest.raises(Exception, match="Invalid signature"):
        management_grants(server.auth, f"Bearer {rs256(stranger.private_pem, grants=grants)}")


def test_operator_tokens_need_the_audience_and_an_expiry() -> None:
    keys, other = make_key_pair(), make_key_pair()
    public = (other.public_pem, keys.public_pem)  # a rotated list: any key verifies
    assert verify_operator(public, f"Bearer {rs256(keys.private_pem, aud='refract-operator')}")
    no_exp = jwt.encode({"aud": "refract-operator"}, keys.private_pem, algorithm="RS256")
    for header, reason in [
        (None, "Authorization"),
        ("Basic abc", "Authorization"),
        (f"Bearer {no_exp}", "exp"),
        (f"Bearer {rs256(keys.private_pem)}", "aud"),
        (f"Bearer {rs256(keys.private_pem, aud='other')}", "audience"),
        (f"Bearer {rs256(make_key_pair().private_pem, aud='refract-operator')}", "signature"),
    ]:
        with pytest.raises(PermissionError, match=reason):
            verify_operator(public, header)
    # And an operator token is no management token, whatever it claims.
    auth = AuthConfig(management_public_key=keys.public_pem)
    grants = [{"target": "*/*", "action": "*"}]
    token = rs256(keys.private_pem, aud="refract-operator", grants=grants)
    with pytest.raises(Exception, match="operator token"):
        management_grants(auth, f"Bearer {token}")


@pytest.mark.multiprocess
def test_the_dev_runtime_has_an_operator_api_and_listens_on_extra_addresses(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloud import devstack

    data = tmp_path / "data"
    monkeypatch.setenv("RUNTIME_EXTRA_HOSTS", "127.0.0.5")
    command = devstack.runtime_command(database.conninfo(), os.environ.get("REDIS_URL"), data)
    assert "--host=127.0.0.5" in command
    config = yaml.safe_load((data / "runtime.yml").read_text())
    assert config["hosts"] == ["127.0.0.1", "localhost"]
    assert config["operator"]["publicKey"] == config["managementPublicKey"]
    key_file = data / "operator-encryption-key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert config["operator"]["encryptionKey"] == key_file.read_text().strip()
    devstack.runtime_command(database.conninfo(), os.environ.get("REDIS_URL"), data)
    assert yaml.safe_load((data / "runtime.yml").read_text())["operator"] == config["operator"]

    port = free_port()
    log = tmp_path / "runtime.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        private_pem = (data / "platform-key.pem").read_text()
        token = rs256(private_pem, aud="refract-operator")
        request = urllib.request.Request(
            f"http://127.0.0.5:{port}/_operator/servers",
            headers={"Authorization": f"Bearer {token}"},
        )
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                    assert answer.status == 200
                    assert json.loads(answer.read()) == {"servers": []}
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        # The sandbox answers on its own hosts only: not on a private server's address.
        try:
            urllib.request.urlopen(f"http://127.0.0.5:{port}/status", timeout=10)
            status = 200
        except urllib.error.HTTPError as error:
            status = error.code
        assert status == 404
    finally:
        process.terminate()
        process.wait(timeout=15)
