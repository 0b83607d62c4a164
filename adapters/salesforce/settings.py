"""How to reach one Salesforce org, and how the adapter behaves (validated from the config)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from connector.kernel.timeutil import TimeZoneName


class SalesforceSettings(BaseModel):
    """Connection and behaviour of the Salesforce adapter (one auth method, complete)."""

    model_config = ConfigDict(extra="forbid")

    instance_url: str | None = Field(
        None,
        description="https://<mydomain>.my.salesforce.com; required with session_id "
        "(the login flows learn it from the login).",
    )
    session_id: SecretStr | None = Field(None, description="An access token / session id.")
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    consumer_key: str | None = Field(None, description="Connected app key for the JWT flow.")
    private_key_file: Path | None = Field(None, description="PEM key that signs the JWT.")
    login_url: str = Field(
        "https://login.salesforce.com",
        description="https://login.salesforce.com, https://test.salesforce.com (sandboxes) or "
        "https://<mydomain>.my.salesforce.com.",
    )
    api_version: str = Field("59.0", pattern=r"^\d+\.\d$")
    person_objects: list[Literal["Lead", "Contact"]] = Field(["Lead", "Contact"], min_length=1)
    contact_roles: Literal["primary", "all"] = "primary"
    bulk_threshold: int = Field(10_000, ge=0, description="More updates than this: Bulk API 2.0.")
    api_budget_share: float = Field(
        0.25, gt=0, le=1, description="Share of the org's daily API requests one run may use."
    )
    page_size: int | None = Field(None, ge=200, le=2000, description="Query batch size.")
    verify_tls: bool = True
    allow_http: bool = Field(False, description="Accept http:// on 127.0.0.1 (the emulator).")
    bulk_poll_interval: float = Field(2.0, gt=0)
    bulk_timeout: float = Field(3600.0, gt=0)
    timeout: float = Field(120.0, gt=0, description="Seconds per HTTP request.")
    time_zone: TimeZoneName | None = Field(
        None,
        description="IANA time zone of the org's dates; default: Organization.TimeZoneSidKey.",
    )

    @model_validator(mode="after")
    def _one_auth_method(self) -> SalesforceSettings:
        methods: dict[str, list[object]] = {
            "session_id": [self.session_id],
            "username + password + security_token": [
                self.username,
                self.password,
                self.security_token,
            ],
            "JWT (username + consumer_key + private_key_file)": [
                self.username,
                self.consumer_key,
                self.private_key_file,
            ],
        }
        complete = [name for name, parts in methods.items() if all(p is not None for p in parts)]
        if len(complete) != 1:
            found = "none is complete" if not complete else "got " + " and ".join(complete)
            raise ValueError(f"give exactly one auth method: {', '.join(methods)}; {found}")
        if self.session_id is not None and not self.instance_url:
            raise ValueError("session_id needs instance_url (https://<mydomain>.my.salesforce.com)")
        return self

    @property
    def auth_method(self) -> Literal["session", "password", "jwt"]:
        if self.session_id is not None:
            return "session"
        return "password" if self.password is not None else "jwt"
