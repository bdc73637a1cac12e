from django.contrib.auth import views as auth_views
from django.urls import path

from accounts.views import auth, cli, workspaces
from servers import views as servers_views

app_name = "accounts"

urlpatterns = [
    path("", auth.home, name="home"),
    path("sign-up/", auth.sign_up, name="sign-up"),
    path("sign-up/check-your-inbox/", auth.sign_up_done, name="sign-up-done"),
    path("verify-email/resend/", auth.resend_verification, name="verify-email-resend"),
    path("verify-email/<str:token>/", auth.verify_email, name="verify-email"),
    path("favicon.ico", auth.favicon, name="favicon"),
    path("sign-in/", auth.sign_in, name="sign-in"),
    path("sign-out/", auth.sign_out, name="sign-out"),
    path("settings/", auth.account_settings, name="settings"),
    path("settings/password/", auth.PasswordChangeView.as_view(), name="password-change"),
    path("password-reset/", auth.PasswordResetView.as_view(), name="password-reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_sent.html"),
        name="password-reset-sent",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path("cli-auth", cli.cli_auth, name="cli-auth"),
    path("cli-auth/", cli.cli_auth),
    path("device", cli.device, name="device"),
    path("device/", cli.device),
    path("settings/keys/", cli.session_key_list, name="session-keys"),
    path("settings/keys/revoke-all/", cli.session_key_revoke_all, name="session-keys-revoke-all"),
    path("settings/keys/<uuid:key_id>/revoke/", cli.session_key_revoke, name="session-key-revoke"),
    path("invitations/<str:token>/", workspaces.invitation, name="invitation"),
    path("workspaces/", workspaces.workspaces, name="workspaces"),
    path("workspaces/new/", workspaces.workspace_create, name="workspace-create"),
    path("w/<slug:slug>/", servers_views.workspace_overview, name="workspace"),
    path("w/<slug:slug>/servers/", servers_views.server_list, name="servers"),
    path("w/<slug:slug>/services/", servers_views.service_list, name="services"),
    path("w/<slug:slug>/members/", workspaces.workspace_members, name="members"),
    path("w/<slug:slug>/members/role/", workspaces.member_role, name="member-role"),
    path("w/<slug:slug>/members/remove/", workspaces.member_remove, name="member-remove"),
    path(
        "w/<slug:slug>/invitations/revoke/", workspaces.invitation_revoke, name="invitation-revoke"
    ),
    path("w/<slug:slug>/audit/", workspaces.workspace_audit, name="audit"),
    path("w/<slug:slug>/settings/", workspaces.workspace_settings, name="workspace-settings"),
    path("w/<slug:slug>/delete/", workspaces.workspace_delete, name="workspace-delete"),
]
