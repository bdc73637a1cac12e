from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts import cli_login
from accounts.models import Membership, SessionKey, User


class MembershipSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="workspace.id")
    name = serializers.CharField(source="workspace.name")
    slug = serializers.CharField(source="workspace.slug")

    class Meta:
        model = Membership
        fields = ["id", "name", "slug", "role"]


class MeSerializer(serializers.ModelSerializer):
    workspaces = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "name", "workspaces"]

    def get_workspaces(self, user: User) -> list[dict]:
        memberships = user.memberships.select_related("workspace").order_by("workspace__name")
        return MembershipSerializer(memberships, many=True).data


class SessionKeySerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField()

    class Meta:
        model = SessionKey
        fields = [
            "id", "name", "origin", "created_at", "expires_at", "last_used_at", "last_used_ip",
            "revoked_at", "current",
        ]  # fmt: skip
        read_only_fields = fields

    def get_current(self, key: SessionKey) -> bool:
        current = self.context.get("current_key")
        return current is not None and current.pk == key.pk


class StrictCharField(serializers.CharField):
    """A string field that takes only strings: DRF would quietly turn 0 or true into text,
    which the schema (type: string) says is refused. Found by the Schemathesis fuzz test."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    # What the field accepts, said exactly: blank or all-whitespace names (trimmed to nothing)
    # and NUL characters are refused, so the schema must not promise them.
    {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\x00]*\S[^\x00]*$"}
)
class KeyNameField(StrictCharField):
    pass


class SessionKeyCreateSerializer(serializers.Serializer):
    name = KeyNameField(max_length=200, trim_whitespace=True)


class CreatedSessionKeySerializer(SessionKeySerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once. Store it now.")

    class Meta(SessionKeySerializer.Meta):
        fields = [*SessionKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class CliLoginStartSerializer(serializers.Serializer):
    client_name = StrictCharField(max_length=100, default="CLI")
    host = StrictCharField(max_length=200, required=False, allow_blank=True, default="")

    def validate_client_name(self, value: str) -> str:
        # The approval page shows no user code for the Prisma CLI (it prints none); a device
        # flow claiming that name must not get a page without the code to compare.
        if value.strip().casefold() == cli_login.PRISMA_CLI_NAME.casefold():
            raise serializers.ValidationError("This client name is reserved.")
        return value


class CliLoginStartedSerializer(serializers.Serializer):
    device_code = serializers.CharField()
    user_code = serializers.CharField()
    verification_uri = serializers.URLField()
    verification_uri_complete = serializers.URLField()
    interval = serializers.IntegerField()
    expires_in = serializers.IntegerField()


class CliLoginPollSerializer(serializers.Serializer):
    device_code = serializers.CharField(max_length=200)


class CliLoginKeySerializer(serializers.Serializer):
    key = serializers.CharField()
    token_type = serializers.CharField(default="Bearer")
