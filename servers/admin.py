from django.contrib import admin
from django.http import HttpRequest

from servers.models import Server


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    """For operators: every workspace's servers. Credentials are never shown (ciphertext only
    lives in the database); state changes go through services, so the status is read-only."""

    list_display = ("name", "workspace", "kind", "region", "status", "version", "last_seen_at")
    list_filter = ("kind", "status", "region")
    search_fields = ("name", "workspace__slug", "endpoint")
    exclude = (
        "private_key", "management_secret", "claim_id", "database_password", "next_private_key"
    )  # fmt: skip
    readonly_fields = (
        "id", "workspace", "kind", "endpoint", "region", "status", "status_reason", "version",
        "last_seen_at", "public_key_pem", "heartbeat_at", "attempts", "created_by", "created_at",
        "updated_at", "database_host", "database_port", "database_name", "database_user",
        "database_sslmode", "delete_schemas",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # servers are created through the console's workflows (keys, checks)
