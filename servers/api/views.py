"""Servers over REST, with the console's rules: members see, admins and owners provision."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import get_membership
from cloud.api import BaseAPIView
from servers import services
from servers.api.serializers import SandboxCreateSerializer, ServerSerializer
from servers.models import Server, get_server


class ServerListView(BaseAPIView):
    @extend_schema(responses=ServerSerializer(many=True), summary="List a workspace's servers")
    def get(self, request: Request, slug: str) -> Response:
        membership = get_membership(request.user, slug)
        servers = (
            Server.objects.for_user(request.user)
            .filter(workspace=membership.workspace)
            .select_related("workspace")
        )
        return Response(ServerSerializer(servers, many=True).data)

    @extend_schema(
        request=SandboxCreateSerializer,
        responses={
            202: OpenApiResponse(
                ServerSerializer, description="Created; its check is queued (`provisioning`)."
            ),
            400: OpenApiResponse(
                description="`invalid`: unknown region, none configured, or a sandbox already"
                " on that region (`fields.region` says which)."
            ),
            403: OpenApiResponse(description="Only admins and owners provision servers."),
        },
        summary="Provision the workspace's sandbox on a region",
    )
    def post(self, request: Request, slug: str) -> Response:
        membership = get_membership(request.user, slug)
        serializer = SandboxCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        region = serializer.validated_data.get("region") or ""
        if not region and len(settings.SANDBOX_REGIONS) == 1:
            region = next(iter(settings.SANDBOX_REGIONS))
        try:
            server = services.provision_sandbox(
                request.user, membership.workspace, region, request=request
            )
        except ValidationError as error:
            raise exceptions.ValidationError(error.message_dict) from None
        return Response(ServerSerializer(server).data, status=status.HTTP_202_ACCEPTED)


class ServerDetailView(BaseAPIView):
    @extend_schema(responses=ServerSerializer, summary="A server and its status")
    def get(self, request: Request, slug: str, server_id: str) -> Response:
        return Response(ServerSerializer(get_server(request.user, slug, server_id)).data)
