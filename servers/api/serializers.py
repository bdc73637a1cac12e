from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from servers.limits import sandbox_limits
from servers.models import Server


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

    class Meta:
        model = Server
        fields = [
            "id", "kind", "name", "endpoint", "region", "status", "status_reason", "version",
            "last_seen_at", "created_at", "limits",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(SandboxLimitsSerializer(allow_null=True))
    def get_limits(self, server: Server) -> dict | None:
        return asdict(sandbox_limits()) if server.kind == Server.Kind.SANDBOX else None


class SandboxCreateSerializer(serializers.Serializer):
    region = serializers.CharField(
        max_length=40,
        required=False,
        allow_blank=True,
        help_text="A sandbox region's name; may be left out when the platform has only one.",
    )
