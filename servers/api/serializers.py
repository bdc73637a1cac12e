from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.api.serializers import StrictCharField
from accounts.models import Workspace
from servers import deploys
from servers.limits import sandbox_limits
from servers.models import MAX_STAGE_LENGTH, Deploy, Server, Service
from servers.starters import STARTERS, get_starter


class SandboxLimitsSerializer(serializers.Serializer):
    requests = serializers.IntegerField(help_text="Requests per `window_seconds`, per service.")
    window_seconds = serializers.IntegerField()
    queue = serializers.IntegerField(help_text="Requests that may wait; more are refused.")
    storage_mb = serializers.IntegerField(help_text="Data per service, in MB.")


class ServerSerializer(serializers.ModelSerializer):
    endpoint = serializers.CharField(
        source="service_origin",
        help_text="Where its services live: `<endpoint>/<service>/<stage>`.",
    )
    limits = serializers.SerializerMethodField()
    services_count = serializers.SerializerMethodField()
    service_name_budget = serializers.SerializerMethodField(
        help_text="How many characters a service's name and stage may have together here:"
        " they make a PostgreSQL schema name (63 bytes), with the workspace's slug on a sandbox."
    )

    class Meta:
        model = Server
        fields = [
            "id", "kind", "name", "endpoint", "region", "status", "status_reason", "version",
            "last_seen_at", "created_at", "limits", "services_count", "service_name_budget",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(SandboxLimitsSerializer(allow_null=True))
    def get_limits(self, server: Server) -> dict | None:
        return asdict(sandbox_limits()) if server.kind == Server.Kind.SANDBOX else None

    def get_services_count(self, server: Server) -> int:
        # Lists annotate the count in their one query; a single server counts its own.
        counted = getattr(server, "services_count", None)
        return server.services.count() if counted is None else counted

    def get_service_name_budget(self, server: Server) -> int:
        return deploys.name_budget(server)


class SandboxCreateSerializer(serializers.Serializer):
    region = serializers.CharField(
        max_length=40,
        required=False,
        allow_blank=True,
        help_text="A sandbox region's name; may be left out when the platform has only one.",
    )


# --- services -------------------------------------------------------------------------------


class ServiceSerializer(serializers.ModelSerializer):
    server = serializers.UUIDField(source="server_id")
    server_name = serializers.CharField(source="server.name")
    endpoint = serializers.CharField(
        help_text="The service's Prisma API: `<server endpoint>/<name>/<stage>`."
    )
    protected = serializers.SerializerMethodField(
        help_text="Whether its API answers only requests with a service token."
    )
    storage_bytes = serializers.IntegerField(
        allow_null=True,
        help_text="What it stores, as the server measured it in the last periodic check"
        " (null when the server does not say); a sandbox service may store 100 MB.",
    )

    class Meta:
        model = Service
        fields = [
            "id", "server", "server_name", "name", "stage", "endpoint", "status",
            "status_reason", "origin", "protected", "revision", "starter", "storage_bytes",
            "storage_measured_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_protected(self, service: Service) -> bool:
        return bool(service.secret)


class ServiceDetailSerializer(ServiceSerializer):
    datamodel = serializers.CharField(
        help_text="The datamodel the server last reported applied (empty before the first"
        " successful deploy)."
    )

    class Meta(ServiceSerializer.Meta):
        fields = [*ServiceSerializer.Meta.fields, "datamodel"]
        read_only_fields = fields


class ServerField(serializers.PrimaryKeyRelatedField):
    """A server of the workspace in the URL: another workspace's is as unknown as a made-up
    id, so the answer does not tell a stranger which ids exist."""

    default_error_messages = {
        "does_not_exist": "No such server in this workspace.",
        "incorrect_type": "Give the server's id (a UUID).",
    }

    def get_queryset(self) -> Any:
        workspace: Workspace = self.context["workspace"]
        return Server.objects.select_related("workspace").filter(workspace=workspace)


DATAMODEL_HELP = (
    f"Prisma 1 datamodel (SDL), up to {deploys.MAX_DATAMODEL_BYTES // 1024} KB in UTF-8."
)


class ServiceCreateSerializer(serializers.Serializer):
    server = ServerField(pk_field=serializers.UUIDField(), help_text="The server's id.")
    name = StrictCharField(
        max_length=63,
        help_text="Starts with a letter; letters, digits, `-` and `_`. With the stage it may"
        " have the server's `service_name_budget` characters.",
    )
    stage = StrictCharField(max_length=MAX_STAGE_LENGTH, default=deploys.DEFAULT_STAGE)
    datamodel = StrictCharField(
        required=False, trim_whitespace=False, help_text=f"{DATAMODEL_HELP} Or give `starter`."
    )
    starter = serializers.ChoiceField(
        choices=[(starter.key, starter.title) for starter in STARTERS],
        required=False,
        help_text="Deploy a starter datamodel instead of `datamodel`.",
    )
    protect = serializers.BooleanField(
        default=True,
        help_text="Give the service a secret: its API then answers only requests with a"
        " service token (the answer carries one, once).",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if ("datamodel" in data) == ("starter" in data):
            raise serializers.ValidationError(
                {"datamodel": "Give a datamodel or a starter (one of them)."}
            )
        if "starter" in data:
            data["datamodel"] = get_starter(data["starter"]).datamodel
        else:
            data["starter"] = ""
        return data


class ServiceTokenSerializer(serializers.Serializer):
    token = serializers.CharField(
        help_text="A service token for the service's API (HS256 with its secret, 7 days)."
    )


class StarterSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="What `starter` takes when creating a service.")
    title = serializers.CharField()
    description = serializers.CharField()
    datamodel = serializers.CharField()


class DeployMessageSerializer(serializers.Serializer):
    """An error or warning as the server reports it."""

    type = serializers.CharField(help_text="The type it concerns.")
    field = serializers.CharField(allow_null=True, help_text="The field, when it is about one.")
    description = serializers.CharField()


class DeploySerializer(serializers.ModelSerializer):
    service = serializers.UUIDField(source="service_id")
    requested_by = serializers.EmailField(source="requested_by.email", allow_null=True)
    redeploy_of = serializers.UUIDField(
        source="redeploy_of_id",
        allow_null=True,
        help_text="The deploy whose datamodel this one deploys again (a rollback).",
    )
    steps = serializers.ListField(
        child=serializers.DictField(), help_text="The migration steps the server planned."
    )
    errors = DeployMessageSerializer(many=True)
    warnings = DeployMessageSerializer(
        many=True, help_text="Destructive changes: deploy again with `force` to accept them."
    )
    migration_status = serializers.CharField(
        help_text="The server's `migrationStatus` of its revision (`SUCCESS`, `ROLLBACK_*`...)."
    )
    applied = serializers.IntegerField(
        allow_null=True, help_text="Migration steps the server has applied."
    )
    duration = serializers.FloatField(allow_null=True, help_text="Seconds from start to end.")
    stuck = serializers.SerializerMethodField(
        help_text="Running but no longer showing life (no heartbeat, or the server's migration"
        " not moving): it can be cancelled."
    )
    final = serializers.BooleanField(source="is_final", help_text="It ended: nothing will change.")

    class Meta:
        model = Deploy
        fields = [
            "id", "service", "status", "final", "stuck", "reason", "source", "requested_by",
            "dry_run", "force", "redeploy_of", "revision", "migration_status", "applied",
            "steps", "errors", "warnings", "created_at", "started_at", "finished_at",
            "duration", "heartbeat_at", "attempts",
        ]  # fmt: skip
        read_only_fields = fields

    def get_stuck(self, deploy: Deploy) -> bool:
        return deploys.is_stuck(deploy)


class DeployDetailSerializer(DeploySerializer):
    datamodel = serializers.CharField()

    class Meta(DeploySerializer.Meta):
        fields = [*DeploySerializer.Meta.fields, "datamodel"]
        read_only_fields = fields


class CreatedServiceSerializer(ServiceDetailSerializer):
    deploy = DeployDetailSerializer(help_text="Its first deploy, queued.")
    token = serializers.CharField(
        help_text="A service token for its API (7 days), shown once; empty when the service"
        " is not protected."
    )

    class Meta(ServiceDetailSerializer.Meta):
        fields = [*ServiceDetailSerializer.Meta.fields, "deploy", "token"]
        read_only_fields = fields


class DeployRequestSerializer(serializers.Serializer):
    datamodel = StrictCharField(trim_whitespace=False, help_text=DATAMODEL_HELP)
    force = serializers.BooleanField(
        default=False, help_text="Accept the server's destructive warnings (data loss)."
    )
    dry_run = serializers.BooleanField(
        default=False, help_text="Only ask the server for the steps and warnings; apply nothing."
    )


class RedeploySerializer(serializers.Serializer):
    force = serializers.BooleanField(
        default=False, help_text="Accept the server's destructive warnings (data loss)."
    )
