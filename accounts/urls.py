from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("sign-up/", views.sign_up, name="sign-up"),
    path("sign-in/", views.sign_in, name="sign-in"),
    path("sign-out/", views.sign_out, name="sign-out"),
    path("settings/", views.account_settings, name="settings"),
    path("settings/password/", views.PasswordChangeView.as_view(), name="password-change"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_sent.html"),
        name="password-reset-sent",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path("cli-auth", views.cli_auth, name="cli-auth"),
    path("cli-auth/", views.cli_auth),
    path("device", views.device, name="device"),
    path("device/", views.device),
    path("settings/keys/", views.session_key_list, name="session-keys"),
    path("settings/keys/revoke-all/", views.session_key_revoke_all, name="session-keys-revoke-all"),
    path(
        "settings/keys/<uuid:key_id>/revoke/", views.session_key_revoke, name="session-key-revoke"
    ),
    path("invitations/<str:token>/", views.invitation, name="invitation"),
    path("workspaces/", views.workspaces, name="workspaces"),
    path("workspaces/new/", views.workspace_create, name="workspace-create"),
    path("w/<slug:slug>/", views.workspace_overview, name="workspace"),
    path("w/<slug:slug>/servers/", views.workspace_servers, name="servers"),
    path("w/<slug:slug>/services/", views.workspace_services, name="services"),
    path("w/<slug:slug>/members/", views.workspace_members, name="members"),
    path("w/<slug:slug>/members/role/", views.member_role, name="member-role"),
    path("w/<slug:slug>/members/remove/", views.member_remove, name="member-remove"),
    path("w/<slug:slug>/invitations/revoke/", views.invitation_revoke, name="invitation-revoke"),
    path("w/<slug:slug>/audit/", views.workspace_audit, name="audit"),
    path("w/<slug:slug>/settings/", views.workspace_settings, name="workspace-settings"),
    path("w/<slug:slug>/delete/", views.workspace_delete, name="workspace-delete"),
]
