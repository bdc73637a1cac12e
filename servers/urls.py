from django.urls import path

from servers import private_views, self_hosted_views, views

app_name = "servers"

# The lists are `accounts:servers` and `accounts:services` (the workspace's tabs), routed to
# `views.server_list` and `views.service_list`.
SERVICE = "w/<slug:slug>/services/<uuid:service_id>/"
DEPLOY = SERVICE + "deploys/<uuid:deploy_id>/"
SERVER = "w/<slug:slug>/servers/<uuid:server_id>/"

urlpatterns = [
    path("w/<slug:slug>/servers/provision/", views.provision, name="provision"),
    path("w/<slug:slug>/servers/<uuid:server_id>/", views.server_detail, name="detail"),
    path("w/<slug:slug>/servers/<uuid:server_id>/status/", views.server_status, name="status"),
    path("w/<slug:slug>/services/new/", views.service_create, name="service-new"),
    path(SERVICE, views.service_detail, name="service"),
    path(SERVICE + "live/", views.service_live, name="service-live"),
    path(SERVICE + "deploy/", views.service_deploy, name="service-deploy"),
    path(SERVICE + "delete/", views.service_delete, name="service-delete"),
    path(SERVICE + "token/", views.service_token, name="service-token"),
    path(DEPLOY, views.deploy_detail, name="deploy"),
    path(DEPLOY + "live/", views.deploy_live, name="deploy-live"),
    path(DEPLOY + "cancel/", views.deploy_cancel, name="deploy-cancel"),
    path(DEPLOY + "redeploy/", views.deploy_redeploy, name="deploy-redeploy"),
    # Private servers (servers.private_views)
    path("w/<slug:slug>/servers/private/new/", private_views.private_new, name="private-new"),
    path("w/<slug:slug>/servers/private/test/", private_views.private_test, name="private-test"),
    path(
        "w/<slug:slug>/servers/<uuid:server_id>/provision-again/",
        private_views.private_retry,
        name="private-retry",
    ),
    path(
        "w/<slug:slug>/servers/<uuid:server_id>/delete/",
        private_views.server_delete,
        name="delete",
    ),
    # Self-hosted servers (servers.self_hosted_views)
    path("w/<slug:slug>/servers/connect/", self_hosted_views.connect, name="connect"),
    path(SERVER + "check/", self_hosted_views.check, name="check"),
    path(SERVER + "rotation/", self_hosted_views.rotation_start, name="rotation-start"),
    path(SERVER + "rotation/confirm/", self_hosted_views.rotation_confirm, name="rotation-confirm"),
    path(SERVER + "rotation/cancel/", self_hosted_views.rotation_cancel, name="rotation-cancel"),
]
