from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import PasswordChangeForm as DjangoPasswordChangeForm

from accounts.models import Role, User


class SignUpForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)
    email = forms.EmailField(max_length=254)
    password = forms.CharField(
        max_length=128,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters. Long passphrases are welcome.",
    )

    def clean_email(self) -> str:
        # Whether the address has an account is not said here: see `services.sign_up`.
        return self.cleaned_data["email"].strip().lower()

    def clean(self) -> dict:
        data = super().clean()
        password = data.get("password")
        if password:
            candidate = User(email=data.get("email", ""), name=data.get("name", ""))
            try:
                password_validation.validate_password(password, candidate)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return data


class SignInForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autofocus": True}))
    password = forms.CharField(
        max_length=128,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class VerifySignInForm(forms.Form):
    password = forms.CharField(
        max_length=128,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["name"]


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=64, strip=True)
    slug = forms.CharField(
        max_length=40,
        strip=True,
        required=False,
        # refract.js fills it in from the name as you type, until you edit it yourself.
        widget=forms.TextInput(attrs={"data-slug-from": "id_name", "autocomplete": "off"}),
        help_text="Lower-case letters, digits and hyphens. Used in URLs and sandbox endpoints;"
        " it cannot change later. Left empty, it is made from the name.",
    )


class RenameWorkspaceForm(forms.Form):
    name = forms.CharField(max_length=64, strip=True)


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)
    # Set once the inviter has seen that a pending invitation with another role is replaced.
    replace = forms.BooleanField(required=False, widget=forms.HiddenInput)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class SessionKeyForm(forms.Form):
    name = forms.CharField(
        max_length=200, strip=True, help_text="Where it will be used, e.g. “GitHub Actions deploy”."
    )


class PasswordChangeForm(DjangoPasswordChangeForm):
    revoke_keys = forms.BooleanField(
        required=False,
        initial=True,
        label="Also revoke all my CLI sessions and keys",
        help_text="Recommended if you think your password or a key was exposed.",
    )
