from django.urls import path

from servers.api import views

WORKSPACE = "workspaces/<slug:slug>"

urlpatterns = [
    path("starters", views.StarterListView.as_view(), name="api-starters"),
    path(f"{WORKSPACE}/servers", views.ServerListView.as_view(), name="api-servers"),
    path(
        f"{WORKSPACE}/servers/<uuid:server_id>",
        views.ServerDetailView.as_view(),
        name="api-server",
    ),
    path(f"{WORKSPACE}/services", views.ServiceListView.as_view(), name="api-services"),
    path(
        f"{WORKSPACE}/services/<uuid:service_id>",
        views.ServiceDetailView.as_view(),
        name="api-service",
    ),
    path(
        f"{WORKSPACE}/services/<uuid:service_id>/token",
        views.ServiceTokenView.as_view(),
        name="api-service-token",
    ),
    path(
        f"{WORKSPACE}/services/<uuid:service_id>/deploys",
        views.DeployListView.as_view(),
        name="api-service-deploys",
    ),
    path(
        f"{WORKSPACE}/deploys/<uuid:deploy_id>", views.DeployDetailView.as_view(), name="api-deploy"
    ),
    path(
        f"{WORKSPACE}/deploys/<uuid:deploy_id>/cancel",
        views.DeployCancelView.as_view(),
        name="api-deploy-cancel",
    ),
    path(
        f"{WORKSPACE}/deploys/<uuid:deploy_id>/redeploy",
        views.RedeployView.as_view(),
        name="api-deploy-redeploy",
    ),
]
