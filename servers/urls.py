from django.urls import path

from servers import data_views, private_views, self_hosted_views, usage_views, views

app_name = "servers"

# The lists are `accounts:servers` and `accounts:services` (the workspace's tabs), routed to
# `views.server_list` and `views.service_list`.
SERVICE = "w/<slug:slug>/services/<uuid:service_id>/"
DEPLOY = SERVICE + "deploys/<uuid:deploy_id>/"
SERVER = "w/<slug:slug>/servers/<uuid:server_id>/"
DATA = SERVICE + "data/<str:model_name>/"

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
    # Usage (servers.usage_views)
    path(SERVICE + "usage/", usage_views.service_usage, name="service-usage"),
    path("w/<slug:slug>/services/usage/", usage_views.services_usage, name="services-usage"),
    path(DEPLOY, views.deploy_detail, name="deploy"),
    path(DEPLOY + "live/", views.deploy_live, name="deploy-live"),
    path(DEPLOY + "cancel/", views.deploy_cancel, name="deploy-cancel"),
    path(DEPLOY + "redeploy/", views.deploy_redeploy, name="deploy-redeploy"),
    # The playground and the data browser (servers.data_views)
    path(SERVICE + "playground/", data_views.playground, name="playground"),
    path(SERVICE + "data/", data_views.data_index, name="data"),
    path(DATA, data_views.data_rows, name="data-rows"),
    path(DATA + "new/", data_views.data_new, name="data-new"),
    path(DATA + "<str:row_id>/", data_views.data_row, name="data-row"),
    path(DATA + "<str:row_id>/delete/", data_views.data_delete, name="data-delete"),
    path("go/admin", data_views.go_admin, name="go-admin"),
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
