"""Connecting a mailbox: connect sessions, the OAuth callback, the SaaS's confirm, reconnect and
disconnect (docs/architecture.md, "Connecting a mailbox").

The flow, and why it is shaped so:
1. The SaaS backend creates a session for its user's external reference and a return URL, and gets
   a sealed (encrypted, authenticated: shared/sealed.py) link that works until it expires (so a mail
   scanner opening it first does no harm).
2. Opening the link starts msal's auth-code flow (state, nonce, PKCE); the flow is kept server side
   in ``oauthflows`` for ten minutes and its ``state`` is consumed once.
3. The callback redeems the code, records a *pending* generation, stores the refresh state in the
   vault and redirects to the return URL with a short-lived sealed result token.
4. The SaaS backend confirms with that token and its logged-in user's reference. Only then does the
   generation become live. A link sent to a victim therefore binds nothing to the attacker: the
   confirm must come from the SaaS session of the reference that created the link.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shared.accounts.model import Account, Identity, PendingGeneration, Status, secret_tags
from shared.accounts.purge import request_purge
from shared.accounts.repository import AccountRepository
from shared.accounts.status import raise_app_alarm, record_status_change, set_status
from shared.api import RequestError, boolean, error_result, iso_utc, json_object, optional_text, text
from shared.auth.ports import IdentityProvider, MailboxDirectory, TokenVault
from shared.bookings.api import requeue_pending
from shared.context import Services
from shared.errors import (
    AccountAuthError,
    AppAuthError,
    GraphError,
    IdentityUnavailable,
    InvalidToken,
    MailboxUnsupported,
    RowNotFound,
    StorageConflict,
)
from shared.http import HttpResult, json_result, page, redirect
from shared.ids import is_account_id, new_account_id
from shared.messages import Subscribe, Sync
from shared.ops.journal import JournalEntry
from shared.ops.logging import log_context
from shared.sealed import open_token, seal_token
from shared.store.ports import OAUTHFLOWS, Row, TableOp
from shared.subscriptions.gateway import SubscriptionGateway
from shared.sync.due import arm
from shared.sync.mailbox import MailboxLease

log = logging.getLogger("shared.connect")

LINK_PURPOSE = "connect-link"
RESULT_PURPOSE = "connect-result"
FLOW_TTL_SECONDS = 600
# The reconciler looks at a new connection this long after the confirm (its own first round runs at once).
FIRST_ROUND_GRACE_SECONDS = 600
MAX_REF_LENGTH = 256          # external_ref
MAX_RETURN_URL_LENGTH = 2048  # return_url
MAX_LOGIN_HINT_LENGTH = 256   # login_hint
MAX_RESULT_LENGTH = 4096      # result (the result token)
MAX_QUERY_LENGTH = 8192
CALLBACK_PATH = "/api/oauth/callback"
RESULT_PARAM = "connect_result"
ERROR_PARAM = "connect_error"  # access_denied, consent_required, interaction_required, login_required,
#                                 sign_in_failed, sign_in_refused, mailbox_unsupported

START_AGAIN = "Go back to the application and start connecting your calendar again."


@dataclass
class Connector:
    services: Services
    identity: IdentityProvider
    vault: TokenVault
    directory: MailboxDirectory
    subscriptions: SubscriptionGateway | None = None

    @property
    def repo(self) -> AccountRepository:
        return AccountRepository(self.services.tables)

    @property
    def _key(self) -> bytes:
        return self.services.settings.connect_signing_key

    # --- 1. connect sessions -----------------------------------------------------------------------

    async def create_session(self, body: bytes) -> HttpResult:
        """POST /api/connect-sessions {external_ref, return_url, login_hint?, account?}."""
        try:
            request = json_object(body)
            external_ref = text(request, "external_ref", MAX_REF_LENGTH)
            return_url = text(request, "return_url", MAX_RETURN_URL_LENGTH)
            login_hint = optional_text(request, "login_hint", MAX_LOGIN_HINT_LENGTH)
            self._check_return_url(return_url)
        except RequestError as exc:
            return exc.result()
        session = self._session(external_ref, return_url, login_hint)
        return json_result(201, {"url": session["url"], "expires_at": iso_utc(session["expires_at"])})

    def _session(self, external_ref: str, return_url: str, login_hint: str | None,
                 reconnect: str | None = None) -> dict[str, Any]:
        settings = self.services.settings
        now = self.services.clock()
        ttl = settings.connect_link_minutes * 60
        claims = {"ref": external_ref, "ret": return_url, **({"hint": login_hint} if login_hint else {}),
                  **({"acc": reconnect} if reconnect else {})}
        token = seal_token(self._key, LINK_PURPOSE, claims, now=now, ttl_seconds=ttl)
        return {"url": f"{settings.public_base_url}/api/connect/{token}", "expires_at": now + ttl}

    def _check_return_url(self, url: str) -> None:
        try:
            allowed = self._return_url_allowed(url)
        except ValueError:  # urlsplit's port: not a number, or out of range
            raise RequestError(400, "invalid_field", "return_url is not a valid URL", "return_url") from None
        if not allowed:
            raise RequestError(400, "return_url_not_allowed", "return_url must match one of ALLOWED_RETURN_URLS "
                               "in scheme, host, port and path", "return_url")

    def _return_url_allowed(self, url: str) -> bool:
        candidate = urlsplit(url)
        for allowed in self.services.settings.allowed_return_urls:
            target = urlsplit(allowed)
            if (candidate.scheme, candidate.hostname, candidate.port, candidate.path) == \
                    (target.scheme, target.hostname, target.port, target.path) and not candidate.fragment \
                    and not candidate.username and not candidate.password:
                return True
        return False

    # --- 2. the link -------------------------------------------------------------------------------

    async def open_link(self, token: str) -> HttpResult:
        """GET /api/connect/{session}: start the sign-in; the link works until it expires."""
        try:
            claims = open_token(self._key, LINK_PURPOSE, token, now=self.services.clock())
        except InvalidToken as exc:
            title = "This link has expired" if exc.expired else "This link is not valid"
            return page(400 if not exc.expired else 410, title, "The connect link cannot be used.", hint=START_AGAIN)
        try:
            start = await self.identity.start(self._redirect_uri, login_hint=claims.get("hint"))
        except AppAuthError as exc:
            return await self._app_failure(exc)
        except IdentityUnavailable:
            return page(503, "Microsoft could not be reached", "Signing in cannot start right now.",
                        hint="Open the link again in a few minutes.")
        now = self.services.clock()
        await self.services.tables.insert(OAUTHFLOWS, Row(start.state, "", {
            "flow": json.dumps(dict(start.flow)), "external_ref": claims["ref"], "return_url": claims["ret"],
            "account": claims.get("acc"), "expires_at": now + FLOW_TTL_SECONDS}))
        return redirect(start.auth_uri)

    @property
    def _redirect_uri(self) -> str:
        return self.services.settings.public_base_url + CALLBACK_PATH

    # --- 3. the callback ---------------------------------------------------------------------------

    async def callback(self, encoded: str) -> HttpResult:
        """/api/oauth/callback: the IdP's answer (code and state, or error, error_description and state),
        form-encoded in a POST body (response_mode=form_post) or in a GET query string."""
        if len(encoded) > MAX_QUERY_LENGTH:
            return page(414, "Request too long", "The sign-in response is too long to be genuine.", hint=START_AGAIN)
        query = dict(parse_qsl(encoded))
        state = query.get("state", "")
        flow_row = await self._consume_flow(state) if state else None
        if flow_row is None:
            return page(400, "This sign-in cannot be completed",
                        "The sign-in response is unknown, was already used, or has expired.", hint=START_AGAIN)
        if "error" in query:
            # The flow is known, so the person goes back to the SaaS, which learns why (a cancel at the
            # consent page is access_denied, AADSTS65004); only an unknown state gets our own page.
            code = query["error"] if query["error"] in _IDP_ERRORS else "sign_in_failed"
            await self.services.journal.record(flow_row.get("account"), JournalEntry(
                "connect", "error", stage="authorize", error_class=query["error"][:64],
                detail=_aadsts_code(query.get("error_description", ""))))
            return self._back_with_error(flow_row, code)
        if not query.get("code"):
            return page(400, "This sign-in cannot be completed", "The sign-in response carries no code.",
                        hint=START_AGAIN)
        flow = json.loads(str(flow_row.get("flow")))
        try:
            grant = await self.identity.redeem(flow, dict(query))
            profile = await self.directory.profile(grant.access_token)
        except InvalidToken:
            return page(400, "This sign-in cannot be completed", "The sign-in response does not match this sign-in.",
                        hint=START_AGAIN)
        except AccountAuthError as exc:
            await self.services.journal.record(flow_row.get("account"), JournalEntry.failure(
                "connect", exc, stage="redeem"))
            return self._back_with_error(flow_row, "sign_in_refused")
        except AppAuthError as exc:
            return await self._app_failure(exc)
        except MailboxUnsupported as exc:
            await self.services.journal.record(flow_row.get("account"), JournalEntry.failure(
                "connect", exc, stage="profile"))
            return self._back_with_error(flow_row, "mailbox_unsupported")
        except (IdentityUnavailable, GraphError) as exc:
            await self.services.journal.record(None, JournalEntry.failure("connect", exc, stage="redeem"))
            return page(503, "Microsoft could not be reached", "Signing in could not be completed right now.",
                        hint=START_AGAIN)
        identity = replace(grant.identity, display_name=profile.display_name or grant.identity.display_name,
                           mailbox=profile.mailbox, username=grant.identity.username or profile.username)
        account, generation = await self._record_pending(identity, grant.scopes, grant.token_state,
                                                         str(flow_row.get("external_ref")))
        now = self.services.clock()
        result = seal_token(self._key, RESULT_PURPOSE, {"acc": account, "gen": generation,
                                                        "ref": flow_row.get("external_ref")},
                            now=now, ttl_seconds=self.services.settings.result_token_minutes * 60)
        with log_context(account=account, tenant=identity.tenant, stage="callback"):
            await self.services.journal.record(account, JournalEntry(
                "connect", "ok", stage="callback", counts={"generation": generation}))
        return redirect(_with_query(str(flow_row.get("return_url")), {RESULT_PARAM: result, "account": account}))

    def _back_with_error(self, flow_row: Row, code: str) -> HttpResult:
        """Back to the session's return URL with ``connect_error`` (and the account for a reconnect)."""
        params = {ERROR_PARAM: code}
        if flow_row.get("account"):
            params["account"] = str(flow_row.get("account"))
        return redirect(_with_query(str(flow_row.get("return_url")), params))

    async def _consume_flow(self, state: str) -> Row | None:
        """The flow for ``state``, deleted so it works once; None when unknown, used or expired."""
        if len(state) > 512:
            return None
        row = await self.services.tables.get(OAUTHFLOWS, state, "")
        if row is None:
            return None
        # A transaction, not a plain delete: a lone delete of an already-deleted row succeeds, while in a
        # transaction it fails, so of two concurrent callbacks exactly one wins.
        try:
            await self.services.tables.transact(OAUTHFLOWS, [TableOp.delete(state, "", row.etag)])
        except (StorageConflict, RowNotFound):  # a concurrent callback consumed it first
            return None
        if float(row.get("expires_at", 0)) <= self.services.clock():
            return None
        return row

    async def _record_pending(self, identity: Identity, scopes: tuple[str, ...], token_state: str,
                              external_ref: str) -> tuple[str, int]:
        """Store the token and a pending generation: beside the live account of this mailbox, or in a
        new account that nothing runs for until the confirm."""
        settings, now = self.services.settings, self.services.clock()
        expires_at = now + settings.result_token_minutes * 60
        for _ in range(5):
            account = await self.repo.find_by_mailbox(identity.tenant, identity.user)
            if account is None:
                account = await self.repo.create(Account(new_account_id(), identity, Status.PENDING, generation=0,
                                                         status_changed_at=now))
            generation = await self.repo.next_generation(account)
            pending = PendingGeneration(account.account, generation, identity, scopes, now, external_ref, expires_at)
            # The generation row first, as the intent: Key Vault's expiry attribute deletes nothing, so a
            # crash after the secret write must leave a row the sweeper finds (shared/connect/sweep.py).
            # Two callbacks racing for one number: the row's insert lets exactly one of them have it.
            try:
                await self.repo.add_generation(pending)
            except StorageConflict:
                continue  # a concurrent callback for this mailbox took the number: take the next
            await self.vault.put(pending.secret_name, token_state, expires_on=expires_at,
                                 tags=secret_tags(account.account, generation, identity))
            return account.account, generation
        raise StorageConflict("could not record the connection: too many concurrent callbacks")

    # --- 4. confirm --------------------------------------------------------------------------------

    async def confirm(self, account_id: str, body: bytes) -> HttpResult:
        """POST /api/accounts/{account}/confirm {result, external_ref, move?}."""
        try:
            request = json_object(body)
            result = text(request, "result", MAX_RESULT_LENGTH)
            external_ref = text(request, "external_ref", MAX_REF_LENGTH)
            move = boolean(request, "move", False)
        except RequestError as exc:
            return exc.result()
        try:
            claims = open_token(self._key, RESULT_PURPOSE, result, now=self.services.clock())
        except InvalidToken as exc:
            return error_result(410 if exc.expired else 400, "result_expired" if exc.expired else "result_invalid",
                                str(exc), field="result")
        if claims.get("acc") != account_id:
            return error_result(403, "result_for_another_account", "the result token belongs to another account",
                                field="result")
        if claims.get("ref") != external_ref:
            return error_result(403, "result_for_another_reference",
                                "the result token was issued to a connect session of another external_ref",
                                field="external_ref")
        return await self._confirm(account_id, int(claims["gen"]), external_ref, move)

    async def _confirm(self, account_id: str, generation: int, external_ref: str, move: bool) -> HttpResult:
        for _ in range(5):
            account = await self.repo.get(account_id)
            if account is None:
                return error_result(404, "account_not_found", "no such account", field="account")
            if account.status == Status.DISCONNECTED:
                return error_result(409, "account_disconnected", "the account is disconnected; connect again")
            pending = await self.repo.get_generation(account_id, generation)
            if pending is None:
                if account.generation == generation and account.external_ref == external_ref:
                    return json_result(200, describe(account))  # confirmed already: idempotent
                return error_result(410, "connection_expired", "this connection expired or was replaced; connect again")
            if pending.expires_at <= self.services.clock():
                return error_result(410, "connection_expired", "this connection expired; connect again")
            bound = account.external_ref
            if bound is not None and bound != external_ref and not move:
                return error_result(409, "mailbox_bound_to_another_reference",
                                    "this mailbox is connected for another external_ref; confirm with move=true "
                                    "to move it")
            # Make the new secret permanent before the account points at it.
            await self.vault.clear_expiry(pending.secret_name)
            # The reconciler's index row before the account goes live (a stray row for an account that
            # never does is dropped by the reconciler): if the first round never completes, it retries.
            await arm(self.services.tables, account.account, self.services.clock() + FIRST_ROUND_GRACE_SECONDS)
            previous = account
            live = replace(account, identity=pending.identity, status=Status.ACTIVE, reason=None,
                           generation=generation, scopes=pending.scopes, consented_at=pending.consented_at,
                           external_ref=external_ref, status_changed_at=self.services.clock())
            try:
                live = await self.repo.save(live)
            except StorageConflict:
                continue
            await self._after_confirm(previous, live, pending)
            return json_result(200, describe(live))
        return error_result(409, "busy", "the account kept changing; try again")

    async def _after_confirm(self, previous: Account, live: Account, pending: PendingGeneration) -> None:
        if previous.generation and previous.generation != live.generation:
            await self.vault.delete(previous.secret_name)
        if previous.external_ref and previous.external_ref != live.external_ref:
            await self.repo.drop_ref_index(previous.external_ref, live.account)
        await self.repo.delete_generation(live.account, pending.generation)
        await self.services.queue.send(Subscribe(account=live.account))
        await self.services.queue.send(Sync(account=live.account, reason="connect", full=True))
        if previous.generation:
            await requeue_pending(self.services, live.account)  # bookings that waited for the reconnect
        kind = "reconnect" if previous.generation else "connect"
        await self.services.journal.record(live.account, JournalEntry(
            kind, "ok", stage="confirm", counts={"generation": live.generation}))
        await record_status_change(self.services, previous.status, live)

    # --- reading and disconnecting -----------------------------------------------------------------

    async def get_account(self, account_id: str) -> HttpResult:
        """GET /api/accounts/{account}: status, and a fresh connect link when a reconnect is needed."""
        account = await self.repo.get(account_id) if is_account_id(account_id) else None
        if account is None:
            return error_result(404, "account_not_found", "no such account", field="account")
        body = describe(account)
        lease = await MailboxLease(self.services, account.account).read()
        body["sync"] = {"last_good_sync": iso_utc(lease.last_good_sync), "drift_changes": lease.drift_changes,
                        "drift_rounds": lease.drift_rounds}
        if account.status == Status.NEEDS_RECONNECT and account.external_ref:
            session = self._session(account.external_ref, self.services.settings.allowed_return_urls[0],
                                    account.identity.username or None, reconnect=account.account)
            body["reconnect_url"] = session["url"]
            body["reconnect_url_expires_at"] = iso_utc(session["expires_at"])
        return json_result(200, body)

    async def disconnect(self, account_id: str, *, purge: bool) -> HttpResult:
        """DELETE /api/accounts/{account}[?purge=true]: stop everything for the account, delete its
        token, and keep or purge its stored data."""
        account = await self.repo.get(account_id) if is_account_id(account_id) else None
        if account is None:
            return error_result(404, "account_not_found", "no such account", field="account")
        if account.status != Status.DISCONNECTED:
            if self.subscriptions is not None:
                await self._delete_subscriptions(account)
            account = await set_status(self.services, account.account, Status.DISCONNECTED, "by_request") or account
        for pending in await self.repo.generations(account.account):
            await self.vault.delete(pending.secret_name)
            await self.repo.delete_generation(account.account, pending.generation)
        if account.generation:
            await self.vault.delete(account.secret_name)
        await self.services.journal.record(account.account, JournalEntry(
            "disconnect", "ok", detail="purge requested" if purge else "kept data"))
        if purge and account.purge_requested_at is None:
            account = await request_purge(self.services, account)
        return json_result(200, {**describe(account), "purged": account.purge_requested_at is not None})

    async def _delete_subscriptions(self, account: Account) -> None:
        """Delete the subscriptions at Graph while the token that authorises it still exists. Best effort:
        one that survives expires by itself, and notifications for a disconnected account are dropped."""
        from shared.subscriptions.worker import SubscriptionWorker

        assert self.subscriptions is not None
        try:
            await SubscriptionWorker(self.services, self.subscriptions).delete_all(account)
        except Exception as exc:  # the disconnect itself must go on
            await self.services.journal.record(account.account, JournalEntry.failure(
                "disconnect", exc, stage="delete_subscriptions"))

    async def _app_failure(self, error: AppAuthError) -> HttpResult:
        await raise_app_alarm(self.services, error)
        return page(503, "Connecting is unavailable", "The service cannot sign in to Microsoft right now. "
                    "The operators have been alerted; please try again later.")


def describe(account: Account) -> dict[str, Any]:
    """The account as the SaaS sees it: no tokens, no secret names."""
    return {
        "account": account.account, "status": account.status.value, "reason": account.reason,
        "external_ref": account.external_ref, "tenant": account.identity.tenant, "user": account.identity.user or None,
        "username": account.identity.username or None, "mailbox": account.identity.mailbox or None,
        "display_name": account.identity.display_name or None, "scopes": list(account.scopes),
        "consented_at": iso_utc(account.consented_at or None), "generation": account.generation,
        "token_days_left": account.token_days_left,
    }


# The authorization errors a person can cause, passed on as they are; anything else is sign_in_failed.
_IDP_ERRORS = frozenset({"access_denied", "consent_required", "interaction_required", "login_required"})


def _aadsts_code(description: str) -> str | None:
    """Only the AADSTS code of Microsoft's description: the rest is free text from a query string."""
    match = re.match(r"\s*(AADSTS\d{4,6})\b", description)
    return match.group(1) if match else None


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))
