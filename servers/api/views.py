"""Servers, services and deploys over REST, with the console's rules: members see, deploy and
create services; admins and owners provision servers. Every view is a thin face over
`servers.services` and `servers.deploys`; a stranger's ids are 404s, as ids that never were."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions, status
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounts.models import get_membership
from cloud.api import BaseAPIView
from servers import deploys, services
from servers.api.serializers import (
    CreatedServiceSerializer,
    DeployDetailSerializer,
    DeployRequestSerializer,
    DeploySerializer,
    RedeploySerializer,
    SandboxCreateSerializer,
    ServerSerializer,
    ServiceCreateSerializer,
    ServiceDetailSerializer,
    ServiceSerializer,
    ServiceTokenSerializer,
    StarterSerializer,
)
from servers.models import Deploy, Server, Service, get_deploy, get_server, get_service
from servers.starters import STARTERS


def invalid(error: ValidationError) -> exceptions.ValidationError:
    """A service function's refusal as the API's 400: field errors stay under their field; a
    refusal of the request as a whole goes under DRF's `non_field_errors`."""
    if hasattr(error, "error_dict"):
        return exceptions.ValidationError(error.message_dict)
    return exceptions.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: error.messages})


# --- servers --------------------------------------------------------------------------------


class ServerListView(BaseAPIView):
    @extend_schema(responses=ServerSerializer(many=True), summary="List a workspace's servers")
    def get(self, request: Request, slug: str) -> Response:
        membership = get_membership(request.user, slug)
        servers = (
            Server.objects.for_user(request.user)
            .filter(workspace=membership.workspace)
            .select_related("workspace")
            .annotate(services_count=Count("services"))
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
            raise invalid(error) from None
        return Response(ServerSerializer(server).data, status=status.HTTP_202_ACCEPTED)


class ServerDetailView(BaseAPIView):
    @extend_schema(responses=ServerSerializer, summary="A server and its status")
    def get(self, request: Request, slug: str, server_id: uuid.UUID) -> Response:
        return Response(ServerSerializer(get_server(request.user, slug, server_id)).data)


# --- services -------------------------------------------------------------------------------


class ServiceListView(BaseAPIView):
    @extend_schema(
        responses=ServiceSerializer(many=True),
        summary="List the services on a workspace's servers",
    )
    def get(self, request: Request, slug: str) -> Response:
        membership = get_membership(request.user, slug)
        found = (
            Service.objects.for_user(request.user)
            .filter(server__workspace=membership.workspace)
            .select_related("server__workspace")
            .order_by("server__name", "name", "stage")
        )
        return Response(ServiceSerializer(found, many=True).data)

    @extend_schema(
        request=ServiceCreateSerializer,
        responses={
            201: OpenApiResponse(
                CreatedServiceSerializer,
                description="Created, with its first deploy queued and its token (once).",
            ),
            400: OpenApiResponse(
                description="`invalid`: a name or stage the server would refuse, a name taken,"
                " an unknown server or starter, an empty or too large datamodel, a server that"
                " cannot take deploys now; `fields` says which."
            ),
        },
        summary="Create a service on a server and deploy it",
    )
    def post(self, request: Request, slug: str) -> Response:
        membership = get_membership(request.user, slug)
        serializer = ServiceCreateSerializer(
            data=request.data, context={"workspace": membership.workspace}
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            created = deploys.create_service(
                request.user,
                data["server"],
                data["name"],
                data["stage"],
                data["datamodel"],
                starter=data["starter"],
                protect=data["protect"],
                source=Deploy.Source.API,
                request=request,
            )
        except ValidationError as error:
            raise invalid(error) from None
        service = created.service
        service.deploy, service.token = created.deploy, created.token
        return Response(CreatedServiceSerializer(service).data, status=status.HTTP_201_CREATED)


class ServiceDetailView(BaseAPIView):
    @extend_schema(responses=ServiceDetailSerializer, summary="A service and its datamodel")
    def get(self, request: Request, slug: str, service_id: uuid.UUID) -> Response:
        return Response(ServiceDetailSerializer(get_service(request.user, slug, service_id)).data)

    @extend_schema(
        responses={
            202: OpenApiResponse(
                ServiceSerializer,
                description="`deleting`: its queued deploys are cancelled and a task deletes it"
                " on the server, then here. Asking again is harmless.",
            )
        },
        summary="Delete a service (on its server too)",
    )
    def delete(self, request: Request, slug: str, service_id: uuid.UUID) -> Response:
        service = deploys.delete_service(
            request.user, get_service(request.user, slug, service_id), request=request
        )
        return Response(ServiceSerializer(service).data, status=status.HTTP_202_ACCEPTED)


class ServiceTokenView(BaseAPIView):
    @extend_schema(
        request=None,
        responses={
            201: ServiceTokenSerializer,
            400: OpenApiResponse(
                description="`invalid`: the service has no secret (its API needs no token) or"
                " is being deleted."
            ),
        },
        summary="A new service token for a service's API (audited)",
    )
    def post(self, request: Request, slug: str, service_id: uuid.UUID) -> Response:
        service = get_service(request.user, slug, service_id)
        try:
            token = deploys.issue_service_token(request.user, service, request=request)
        except ValueError as error:
            raise exceptions.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: [str(error)]}
            ) from None
        return Response({"token": token}, status=status.HTTP_201_CREATED)


# --- starters -------------------------------------------------------------------------------


class StarterListView(BaseAPIView):
    """The starter datamodels, public like the console's picker: `refract init` reads them
    before anyone logs in."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=StarterSerializer(many=True), summary="The starter datamodels")
    def get(self, request: Request) -> Response:
        return Response(StarterSerializer(STARTERS, many=True).data)


# --- deploys --------------------------------------------------------------------------------


class DeployPagination(CursorPagination):
    """Newest first, by cursor: deploys queued while a client pages through the history do not
    shift the pages it has yet to read."""

    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class DeployListView(BaseAPIView, GenericAPIView):
    pagination_class = DeployPagination
    serializer_class = DeploySerializer

    @extend_schema(responses=DeploySerializer(many=True), summary="A service's deploys")
    def get(self, request: Request, slug: str, service_id: uuid.UUID) -> Response:
        service = get_service(request.user, slug, service_id)
        page = self.paginate_queryset(service.deploys.select_related("requested_by"))
        return self.get_paginated_response(DeploySerializer(page, many=True).data)

    @extend_schema(
        request=DeployRequestSerializer,
        responses={
            202: OpenApiResponse(
                DeployDetailSerializer,
                description="Queued: it runs after the service's earlier deploys.",
            ),
            400: OpenApiResponse(
                description="`invalid`: an empty or too large datamodel, a service being"
                " deleted, a server that cannot take deploys now."
            ),
        },
        summary="Deploy a datamodel to a service (or a dry run)",
    )
    def post(self, request: Request, slug: str, service_id: uuid.UUID) -> Response:
        service = get_service(request.user, slug, service_id)
        serializer = DeployRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            deploy = deploys.request_deploy(
                request.user,
                service,
                serializer.validated_data["datamodel"],
                source=Deploy.Source.API,
                force=serializer.validated_data["force"],
                dry_run=serializer.validated_data["dry_run"],
                request=request,
            )
        except ValidationError as error:
            raise invalid(error) from None
        return Response(DeployDetailSerializer(deploy).data, status=status.HTTP_202_ACCEPTED)


class DeployDetailView(BaseAPIView):
    @extend_schema(
        responses=DeployDetailSerializer,
        summary="A deploy: status, steps, errors and warnings, timings",
    )
    def get(self, request: Request, slug: str, deploy_id: uuid.UUID) -> Response:
        return Response(DeployDetailSerializer(get_deploy(request.user, slug, deploy_id)).data)


class DeployCancelView(BaseAPIView):
    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(DeployDetailSerializer, description="Cancelled."),
            400: OpenApiResponse(
                description="`invalid`: it already ended, or it is running and making progress"
                " (`fields.non_field_errors` says which)."
            ),
        },
        summary="Cancel a queued deploy, or a stuck one",
    )
    def post(self, request: Request, slug: str, deploy_id: uuid.UUID) -> Response:
        try:
            deploy = deploys.cancel_deploy(
                request.user, get_deploy(request.user, slug, deploy_id), request=request
            )
        except ValidationError as error:
            raise invalid(error) from None
        return Response(DeployDetailSerializer(deploy).data)


class RedeployView(BaseAPIView):
    @extend_schema(
        request=RedeploySerializer,
        responses={
            202: OpenApiResponse(
                DeployDetailSerializer,
                description="A new deploy of that deploy's datamodel, queued (`redeploy_of`).",
            ),
            400: OpenApiResponse(
                description="`invalid`: a service being deleted, a server that cannot take"
                " deploys now."
            ),
        },
        summary="Deploy an earlier deploy's datamodel again (roll back, or confirm with force)",
    )
    def post(self, request: Request, slug: str, deploy_id: uuid.UUID) -> Response:
        earlier = get_deploy(request.user, slug, deploy_id)
        serializer = RedeploySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            deploy = deploys.redeploy(
                request.user,
                earlier,
                force=serializer.validated_data["force"],
                source=Deploy.Source.API,
                request=request,
            )
        except ValidationError as error:
            raise invalid(error) from None
        return Response(DeployDetailSerializer(deploy).data, status=status.HTTP_202_ACCEPTED)
