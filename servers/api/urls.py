from django.urls import path

from servers.api import views

urlpatterns = [
    path("workspaces/<slug:slug>/servers", views.ServerListView.as_view(), name="api-servers"),
    path(
        "workspaces/<slug:slug>/servers/<uuid:server_id>",
        views.ServerDetailView.as_view(),
        name="api-server",
    ),
]
