"""Small fakes behind the project's own interfaces, for unit tests (the real clients are covered by
the integration and end-to-end suites)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from shared.accounts.model import Identity
from shared.auth.ports import AccessToken, AuthStart, Grant, Profile
from shared.errors import AccountAuthError, InvalidToken, MailboxUnsupported


class FakeClock:
    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeIdentityProvider:
    """Issues codes for users it was told about; every token it hands out is recorded (leak scans)."""

    def __init__(self) -> None:
        self.users: dict[str, Identity] = {}
        self.issued: list[str] = []
        self.redeemed: set[str] = set()
        self.fail_next: Exception | None = None
        self.codes: dict[str, str] = {}
        self.token_owner: dict[str, Identity] = {}

    def add_user(self, identity: Identity) -> None:
        self.users[identity.username] = identity

    def code_for(self, username: str) -> str:
        code = f"1.AcodeFor{secrets.token_hex(12)}"
        self.issued.append(code)
        self.codes[code] = username
        return code

    async def start(self, redirect_uri: str, *, login_hint: str | None = None) -> AuthStart:
        state = secrets.token_urlsafe(16)
        flow = {"state": state, "redirect_uri": redirect_uri, "code_verifier": secrets.token_urlsafe(32)}
        return AuthStart(f"https://idp.test/authorize?state={state}&login_hint={login_hint or ''}", state, flow)

    async def redeem(self, flow: Mapping[str, Any], response: Mapping[str, str]) -> Grant:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        if response.get("state") != flow.get("state"):
            raise InvalidToken("state mismatch")
        code = response.get("code", "")
        if code in self.redeemed or code not in self.codes:
            raise AccountAuthError("invalid_grant", aad_code="AADSTS54005")
        self.redeemed.add(code)
        identity = self.users[self.codes[code]]
        access, refresh = f"eyJfake.{secrets.token_hex(16)}.sig", f"1.ArefreshFake{secrets.token_hex(16)}"
        self.issued += [access, refresh]
        self.token_owner[access] = identity
        return Grant(identity, ("Calendars.ReadWrite", "User.Read"), access, 0.0, f'{{"rt": "{refresh}"}}')

    async def refresh(self, token_state: str, *, claims_challenge: str | None = None) -> AccessToken:
        access = f"eyJfake.{secrets.token_hex(16)}.sig"
        self.issued.append(access)
        return AccessToken(access, 0.0)


class FakeDirectory:
    """Answers the profile of whoever the access token was issued to (by the fake IdP)."""

    def __init__(self, idp: FakeIdentityProvider) -> None:
        self.idp = idp
        self.unsupported_users: set[str] = set()

    async def profile(self, access_token: str) -> Profile:
        identity = self.idp.token_owner[access_token]
        if identity.username in self.unsupported_users:
            raise MailboxUnsupported("MailboxNotEnabledForRESTAPI", status=404, code="MailboxNotEnabledForRESTAPI")
        return Profile(display_name=identity.display_name or identity.username, mailbox=identity.username,
                       username=identity.username)
