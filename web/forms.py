"""Flask-WTF forms for the pages. They only check shape; the password policy, duplicate
e-mails and rate limits live in ``services.accounts`` so the pages and the API agree."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, Field, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp, ValidationError

# The accounts service's own shape check, so the page refuses exactly what the API refuses.
from security import password_problems
from services.accounts import EMAIL_RE, MAX_EMAIL_LENGTH


class LoginForm(FlaskForm):
    """E-mail and password; ``remember`` keeps the session across browser restarts."""

    email = EmailField(
        "E-mail address",
        validators=[DataRequired("Enter your e-mail address."), Length(max=MAX_EMAIL_LENGTH)],
    )
    password = PasswordField("Password", validators=[DataRequired("Enter your password.")])
    remember = BooleanField("Keep me logged in on this device")
    submit = SubmitField("Log in")


class RegisterForm(FlaskForm):
    """A new account; the strength rules are reported back from the accounts service."""

    name = StringField("Name", validators=[Optional(), Length(max=100, message="Use at most 100 characters.")])
    email = EmailField(
        "E-mail address",
        validators=[
            DataRequired("Enter your e-mail address."),
            Length(max=MAX_EMAIL_LENGTH, message=f"Use at most {MAX_EMAIL_LENGTH} characters."),
            Regexp(EMAIL_RE, message="Enter an e-mail address like name@example.org."),
        ],
    )
    password = PasswordField("Password", validators=[DataRequired("Choose a password.")])
    confirm = PasswordField(
        "Repeat the password",
        validators=[
            DataRequired("Repeat the password."),
            EqualTo("password", message="The two passwords differ."),
        ],
    )
    submit = SubmitField("Create account")

    def validate_password(self, field: Field) -> None:
        """Name every broken rule at once, with the very function the accounts service uses."""
        problems = password_problems(field.data or "", self.email.data or "")
        if problems:
            raise ValidationError(" ".join(problems))
