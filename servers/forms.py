"""The console's service forms. They only shape input: names, stages and datamodels are judged
by `servers.deploys` (one place per concern), whose field errors the views put back on the form.
"""

from __future__ import annotations

from django import forms

from accounts.models import User, Workspace
from servers.deploys import DEFAULT_STAGE
from servers.models import Server
from servers.private import DEFAULT_SSL_MODE, SSL_MODES, DatabaseParams
from servers.starters import STARTERS


class NewServiceForm(forms.Form):
    server = forms.ModelChoiceField(
        queryset=Server.objects.none(),
        empty_label=None,
        error_messages={"invalid_choice": "Choose one of this workspace's healthy servers."},
    )
    # Not required here: `deploys.validate_names` says what is wrong, in the product's words.
    name = forms.CharField(required=False, strip=True)
    stage = forms.CharField(required=False, strip=True, initial=DEFAULT_STAGE)
    starter = forms.ChoiceField(
        choices=[(starter.key, starter.title) for starter in STARTERS],
        initial=STARTERS[0].key,
        widget=forms.RadioSelect,
    )
    protect = forms.BooleanField(required=False, initial=True, label="Protect with a secret")

    def __init__(self, user: User, workspace: Workspace, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["server"].queryset = (  # type: ignore[attr-defined]
            Server.objects.for_user(user)
            .filter(workspace=workspace, status=Server.Status.HEALTHY)
            .select_related("workspace")
        )


class PrivateServerForm(forms.Form):
    """A private server: its name and the user's PostgreSQL database, as parts or as one URL
    (the URL wins when given). `servers.private` judges the values; the password is never
    rendered back into the page."""

    name = forms.CharField(required=False, strip=True, max_length=40)
    url = forms.CharField(required=False, strip=True, label="Or a URL")
    host = forms.CharField(required=False, strip=True)
    port = forms.IntegerField(required=False, initial=5432, min_value=1, max_value=65535)
    database = forms.CharField(required=False, strip=True)
    user = forms.CharField(required=False, strip=True)
    password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False)
    )
    sslmode = forms.ChoiceField(
        required=False,
        choices=[(mode, mode) for mode in SSL_MODES],
        initial=DEFAULT_SSL_MODE,
        label="SSL mode",
    )

    def params(self) -> DatabaseParams:
        """The database the form describes; ValidationError for a URL that does not parse."""
        data = self.cleaned_data
        if data.get("url"):
            return DatabaseParams.from_url(data["url"])
        return DatabaseParams(
            host=data.get("host") or "",
            port=data.get("port") or 5432,
            database=data.get("database") or "",
            user=data.get("user") or "",
            password=data.get("password") or "",
            sslmode=data.get("sslmode") or DEFAULT_SSL_MODE,
        )


class ConnectServerForm(forms.Form):
    """The "Connect a server" form; names and the endpoint are judged by `servers.self_hosted`."""

    KEY_PAIR, SECRET = "key_pair", "secret"

    name = forms.CharField(
        max_length=40,
        strip=True,
        help_text="Letters, digits, - and _; the Prisma CLI knows the server by this name.",
    )
    endpoint = forms.CharField(
        max_length=200,
        strip=True,
        help_text="The server's origin, such as https://prisma.example.com:4466.",
    )
    credentials = forms.ChoiceField(
        choices=[
            (KEY_PAIR, "Generate a key pair (the console shows the public key to install)"),
            (SECRET, "Use the server's management API secret"),
        ],
        initial=KEY_PAIR,
        widget=forms.RadioSelect,
    )
    secret = forms.CharField(
        required=False,
        strip=True,
        label="Management API secret",
        widget=forms.PasswordInput(render_value=False),
        help_text="managementApiSecret of the server (PRISMA_MANAGEMENT_API_SECRET); kept"
        " encrypted and never shown again.",
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("credentials") == self.SECRET and not data.get("secret"):
            self.add_error("secret", "Enter the server's management API secret.")
        if data.get("credentials") != self.SECRET:
            data["secret"] = ""
        return data
