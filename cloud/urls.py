from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from compat.views import cloud_api

urlpatterns = [
    path("admin/", admin.site.urls),  # operators only (is_staff)
    path("api/v1/", include("accounts.api.urls")),
    path("api/v1/", include("servers.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # The Prisma 1 CLI's cloud API: point CLOUD_API_ENDPOINT here.
    path("cloud-api", cloud_api, name="cloud-api"),
    path("", include("servers.urls")),
    path("", include("accounts.urls")),
]
