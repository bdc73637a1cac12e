from django.urls import path

from servers import views

app_name = "servers"

# The list is `accounts:servers` (the workspace's Servers tab), routed to `views.server_list`.
urlpatterns = [
    path("w/<slug:slug>/servers/provision/", views.provision, name="provision"),
    path("w/<slug:slug>/servers/<uuid:server_id>/", views.server_detail, name="detail"),
    path("w/<slug:slug>/servers/<uuid:server_id>/status/", views.server_status, name="status"),
]
