from django.urls import path

from accounts.api import views

urlpatterns = [
    path("me", views.MeView.as_view(), name="api-me"),
    path("session-keys", views.SessionKeyListView.as_view(), name="api-session-keys"),
    path(
        "session-keys/current",
        views.CurrentSessionKeyView.as_view(),
        name="api-session-key-current",
    ),
    path(
        "session-keys/revoke-all",
        views.RevokeAllSessionKeysView.as_view(),
        name="api-session-keys-revoke-all",
    ),
    path(
        "session-keys/<uuid:key_id>",
        views.SessionKeyDetailView.as_view(),
        name="api-session-key",
    ),
    path("cli-login", views.CliLoginStartView.as_view(), name="api-cli-login"),
    path("cli-login/poll", views.CliLoginPollView.as_view(), name="api-cli-login-poll"),
]
