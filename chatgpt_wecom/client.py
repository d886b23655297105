"""A client of the daemon's control API over its Unix socket — used by `ctl` and the TUI.

It imports neither the daemon nor textual. Every call raises `DaemonNotRunning` when nothing answers on the
socket, and `ControlError` (with the API's `code`) when the daemon refuses a request.
"""

from __future__ import annotations

import errno
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, TypeAdapter, ValidationError

from chatgpt_wecom import protocol as p

M = TypeVar("M", bound=BaseModel)

_TEMPLATES = TypeAdapter(list[p.Template])
_AUDIT = TypeAdapter(list[p.AuditEntry])
_HISTORY = TypeAdapter(list[p.Exchange])
# What a missing, stopped or restarted daemon looks like from here (a pooled connection may outlive a restart).
_GONE = (
    aiohttp.ClientConnectorError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    FileNotFoundError,
    ConnectionRefusedError,
    PermissionError,
)


class DaemonNotRunning(Exception):
    """Nothing answers on the control socket."""

    def __init__(self, socket_path: Path) -> None:
        super().__init__(f"the daemon is not running (no answer on {socket_path})")
        self.socket_path = socket_path


class NoAccess(DaemonNotRunning):
    """The socket is there but this user may not use it (it is 0600, owned by the daemon's user)."""

    def __init__(self, socket_path: Path) -> None:
        Exception.__init__(
            self, f"permission denied on {socket_path}: run this as the daemon's user (e.g. sudo -u <that user> …)"
        )
        self.socket_path = socket_path


def _gone(socket_path: Path, exc: BaseException) -> DaemonNotRunning:
    """The right complaint for a connection failure: no access, or nobody there."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, PermissionError) or getattr(cause, "errno", None) in (errno.EACCES, errno.EPERM):
            return NoAccess(socket_path)
        cause = cause.__cause__ or cause.__context__
    return DaemonNotRunning(socket_path)


class ControlError(Exception):
    """The daemon refused a request; `code` is the API's error code, `lines` its problems one by one (if several)."""

    def __init__(self, status: int, code: str, message: str, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.lines = lines or []


async def _refusal(resp: aiohttp.ClientResponse) -> ControlError:
    """The API's `{"error", "code"}` answer as a ControlError (any other body: its status and reason)."""
    try:
        payload = await resp.json(content_type=None)
    except ValueError:
        payload = None
    err = payload if isinstance(payload, dict) else {}
    lines = err.get("lines")
    return ControlError(
        resp.status,
        str(err.get("code", "error")),
        str(err.get("error", resp.reason or "")),
        [str(x) for x in lines] if isinstance(lines, list) else None,
    )


def _body(model: type[M], **fields: Any) -> M:
    """A request body; what the API would refuse is refused here the same way: ControlError `bad_request` whose
    message is a sentence (never pydantic's report)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = p.validation_sentences(exc)
        raise ControlError(400, "bad_request", "; ".join(problems), problems) from None


class ControlClient:
    """`async with ControlClient(path) as client: status = await client.status()`."""

    def __init__(self, socket_path: Path, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.socket_path)),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    async def _request(self, method: str, path: str, body: BaseModel | None = None, **query: Any) -> Any:
        params = {k: str(v) for k, v in query.items() if v is not None}
        data = body.model_dump_json() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self._http().request(
                method, f"http://daemon{p.API}{path}", params=params, data=data, headers=headers
            ) as resp:
                if resp.status >= 400:
                    raise await _refusal(resp)
                return await resp.json(content_type=None) if resp.content_length != 0 else None
        except _GONE as exc:
            raise _gone(self.socket_path, exc) from exc

    async def _get(self, model: type[M], path: str, **query: Any) -> M:
        return model.model_validate(await self._request("GET", path, **query))

    async def _post(self, model: type[M], path: str, body: BaseModel | None = None) -> M:
        return model.model_validate(await self._request("POST", path, body))

    # --- reads -------------------------------------------------------------------------------------
    async def status(self) -> p.Status:
        return await self._get(p.Status, "/status")

    async def conversations(
        self, user: str | None = None, limit: int = 50, before: int | None = None
    ) -> p.ExchangePage:
        """Recent exchanges, newest first; `before` pages back."""
        return await self._get(p.ExchangePage, "/conversations", user=user, limit=limit, before=before)

    async def users(self) -> p.Users:
        """Everyone the daemon knows (messages, conversations, quota counts, access lists), last seen first."""
        return await self._get(p.Users, "/users")

    async def history(self, user: str) -> list[p.Exchange]:
        """A user's whole history, oldest first."""
        return _HISTORY.validate_python(await self._request("GET", f"/users/{quote(user, safe='')}/history"))

    async def history_markdown(self, user: str) -> str:
        data = await self._request("GET", f"/users/{quote(user, safe='')}/history", format="md")
        return str(data["markdown"])

    async def logs(self, since: int = 0, limit: int | None = None) -> p.LogLines:
        """The daemon's log lines after line `since` (the last `limit` of them)."""
        query = {"since": since, **({"limit": limit} if limit else {})}
        return await self._get(p.LogLines, "/logs", **query)

    async def quotas(self) -> p.Quotas:
        return await self._get(p.Quotas, "/quotas")

    async def lists(self) -> p.Lists:
        return await self._get(p.Lists, "/lists")

    async def words(self) -> p.Words:
        return await self._get(p.Words, "/words")

    async def templates(self) -> list[p.Template]:
        return _TEMPLATES.validate_python(await self._request("GET", "/templates"))

    async def audit(self, limit: int = 100, before: int | None = None) -> list[p.AuditEntry]:
        return _AUDIT.validate_python(await self._request("GET", "/audit", limit=limit, before=before))

    # --- writes ------------------------------------------------------------------------------------
    async def add_users(self, name: p.ListName, users: list[str], *, confirm: bool = False) -> p.Changed:
        """Add `users` to a list. Bad ids: ControlError `bad_user_id` (its `lines`: one sentence per id). The first
        entry of an empty allow list: ControlError `confirm_needed` (its message is the warning) unless `confirm`."""
        return await self._post(p.Changed, f"/lists/{name}/add", _body(p.UsersChange, users=users, confirm=confirm))

    async def remove_users(self, name: p.ListName, users: list[str]) -> p.Changed:
        return await self._post(p.Changed, f"/lists/{name}/remove", _body(p.UsersChange, users=users))

    async def add_words(self, words: list[str]) -> p.Changed:
        return await self._post(p.Changed, "/words/add", _body(p.WordsChange, words=words))

    async def remove_words(self, words: list[str]) -> p.Changed:
        return await self._post(p.Changed, "/words/remove", _body(p.WordsChange, words=words))

    async def reset_quota(self, user: str | None) -> p.QuotaResetDone:
        return await self._post(p.QuotaResetDone, "/quota/reset", _body(p.QuotaReset, user=user))

    async def clear_context(self, user: str) -> None:
        await self._request("POST", f"/users/{quote(user, safe='')}/context/clear")

    async def pause(self, notice: str | None = None) -> p.Status:
        return await self._post(p.Status, "/pause", _body(p.PauseRequest, notice=notice))

    async def resume(self) -> p.Status:
        return await self._post(p.Status, "/resume")

    async def reload(self) -> p.Reloaded:
        return await self._post(p.Reloaded, "/reload")

    async def retry(self, user: str | None = None) -> p.RetryDone:
        """End the retry wait of `user`'s blocked deliveries (None: every one): they are tried at once."""
        return await self._post(p.RetryDone, "/retry", _body(p.RetryRequest, user=user))

    async def playground(self, user: str, text: str, channel: str | None = None) -> p.PlaygroundAccepted:
        """Send `text` as `user` of `channel` (None: the first configured) through the real pipeline; the answer
        shows in the event stream and goes to that user there. An unknown channel: ControlError `unknown_channel`."""
        message = _body(p.PlaygroundMessage, user=user, text=text, channel=channel)
        return await self._post(p.PlaygroundAccepted, "/playground", message)

    async def prune(self, *, dry_run: bool = False, days: int | None = None) -> p.PruneReport:
        """Prune now what is older than `days` (None: the daemon's retention_days); `dry_run`: only count it."""
        return await self._post(p.PruneReport, "/prune", _body(p.PruneRequest, dry_run=dry_run, days=days))

    # --- the live stream ---------------------------------------------------------------------------
    async def events(
        self, on_open: Callable[[], None] | None = None, *, since: int | None = None, boot: str | None = None
    ) -> AsyncIterator[p.Event]:
        """Follow the live event stream until the daemon goes away (then DaemonNotRunning). `on_open` is called
        once the daemon has accepted the stream; a refusal (e.g. too many clients) raises ControlError.

        `since` (the last seq seen, with the `boot` it was numbered under): first a `stream.resumed` event (seq 0,
        data a `StreamResumed`: `resumed(event)` reads it), then the kept events after `since`, then live ones."""
        params = {k: str(v) for k, v in (("since", since), ("boot", boot)) if v is not None}
        try:
            async with self._http().get(
                f"http://daemon{p.API}/events",
                params=params,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            ) as resp:
                if resp.status != 200:
                    raise await _refusal(resp)
                if on_open is not None:
                    on_open()
                async for raw in resp.content:
                    line = raw.decode("utf-8").rstrip("\r\n")
                    if line.startswith("data:"):
                        yield p.Event.model_validate(json.loads(line[5:]))
        except (*_GONE, aiohttp.ClientPayloadError) as exc:
            raise _gone(self.socket_path, exc) from exc


def resumed(event: p.Event) -> p.StreamResumed | None:
    """The replay's description when `event` is the first one of a stream opened with `since`, else None."""
    return p.StreamResumed.model_validate(event.data) if event.kind == p.RESUMED and event.seq == 0 else None
