"""The control API: JSON under /v1 on the daemon's Unix socket — the only way `ctl` and the TUI steer it.

Reads: status, conversations, the user directory (everyone the daemon knows), a user's history, quotas, lists,
words, templates, audit log, the recent log lines.
Writes: lists, words, quota resets, clearing a context, pause/resume, reload, the playground, a prune, retrying
blocked deliveries now.
Live: `GET /v1/events` streams bus events as Server-Sent Events from a bounded per-client queue; past the bus's
cap of clients a new one gets 503 `too_many_clients`.

Catching up: events are numbered (`seq`, per daemon run, named by `Status.boot`) and the bus keeps the last 2,000.
`GET /v1/events?since=N&boot=B` starts with one `stream.resumed` event (seq 0, data `StreamResumed`), then replays
every kept event numbered after N, in order, then goes on live — no gap and no duplicate between the two.
- `lost` > 0: N is older than the backlog; that many events after N are gone (reload what you show).
- `restarted`: B is not this run's boot (or N is past this run's newest number): the daemon restarted and numbers
  afresh, so N means nothing here; the replay is everything this run has kept (`since` 0), and what the old run
  did after N — e.g. answers finished during its shutdown — is not in it: reload what you show.
Without `since` the stream is live only, as before. `since=0` with no boot: everything kept.
Errors are `{"error", "code"}`. Changes are audited with the operator's OS user as the actor.
"""

from __future__ import annotations

import asyncio
import logging
import pwd
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from chatgpt_wecom import protocol as p
from chatgpt_wecom.daemon.events import Event, TooManySubscribers
from chatgpt_wecom.daemon.exchange_view import as_wire, history_markdown
from chatgpt_wecom.daemon.keys import SERVICES
from chatgpt_wecom.daemon.operator import Operator, vars_of
from chatgpt_wecom.daemon.services import Services
from chatgpt_wecom.user_ids import user_id_problem

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

KEEPALIVE = 15.0  # seconds between SSE comments when nothing happens
POLL = 0.5  # seconds between checks that the client is still there and the daemon not stopping


def _error(status: int, code: str, message: str, lines: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message, "code": code}
    if lines:
        body["lines"] = lines
    return web.json_response(body, status=status)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:  # the request's body: sentences, never pydantic's report
        problems = p.validation_sentences(exc)
        return _error(400, "bad_request", "; ".join(problems), problems)
    except web.HTTPException as exc:
        return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
    except Exception:
        log.exception("control: %s %s failed", request.method, request.path)
        return _error(500, "internal", "internal error; see the daemon's log")


def _json(data: BaseModel | list[M]) -> web.Response:
    if isinstance(data, BaseModel):
        text = data.model_dump_json()
    else:
        text = "[" + ",".join(item.model_dump_json() for item in data) + "]"
    return web.Response(text=text, content_type="application/json")


async def _body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    return model.model_validate_json(raw or b"{}")


def _int(request: web.Request, name: str, default: int | None, *, high: int = 1000) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise web.HTTPBadRequest(reason="Bad Request", text=f"{name} must be a number") from None
    if not (0 if name == "since" else 1) <= number <= (high if name == "limit" else 2**62):
        raise web.HTTPBadRequest(reason="Bad Request", text=f"{name} is out of range")
    return number


def operator(request: web.Request) -> str:
    """The audit actor: the OS user on the other end of the socket (SO_PEERCRED)."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None:
        return "control"
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        return f"control:{pwd.getpwuid(uid).pw_name}"
    except (OSError, KeyError):
        return "control"


def _list_name(request: web.Request) -> p.ListName:
    name = request.match_info["name"]
    if name not in p.LIST_NAMES:
        raise web.HTTPNotFound(reason="Unknown List", text=f"unknown list {name!r} (allow, deny, vip, admin)")
    return name


def _svc(request: web.Request) -> Services:
    return request.app[SERVICES]


def _op(request: web.Request) -> Operator:
    return request.app[SERVICES].operator


# --- reads ---------------------------------------------------------------------------------------------
async def status(request: web.Request) -> web.Response:
    return _json(await _op(request).status())


async def conversations(request: web.Request) -> web.Response:
    limit = _int(request, "limit", 50) or 50
    page = await _svc(request).history.recent(request.query.get("user"), limit, _int(request, "before", None))
    items = as_wire(page)
    zone = _svc(request).live.settings.timezone
    return _json(p.ExchangePage(items=items, next_before=items[-1].id if len(items) == limit else None, timezone=zone))


async def history(request: web.Request) -> web.Response:
    user = request.match_info["user"]
    items = as_wire(await _svc(request).history.of_user(user))
    if request.query.get("format") == "md":
        return web.json_response({"markdown": history_markdown(user, items, _svc(request).live.settings.zone)})
    return _json(items)


async def logs(request: web.Request) -> web.Response:
    ring = _svc(request).logs
    lines = ring.since(_int(request, "since", 0) or 0, _int(request, "limit", None, high=5000))
    return _json(p.LogLines(lines=[p.LogLine(**vars_of(line)) for line in lines], last_seq=ring.last_seq))


async def users(request: web.Request) -> web.Response:
    return _json(await _op(request).users())


async def quotas(request: web.Request) -> web.Response:
    return _json(await _op(request).quotas())


async def lists(request: web.Request) -> web.Response:
    snap = _svc(request).policy.lists
    return _json(p.Lists(**{n: sorted(snap.members(n), key=str.casefold) for n in p.LIST_NAMES}))


async def words(request: web.Request) -> web.Response:
    return _json(p.Words(words=list(_svc(request).policy.snapshot.words)))


async def templates(request: web.Request) -> web.Response:
    loaded = _svc(request).live.templates
    items = [p.Template(title=t.title, description=t.description, example=t.example) for t in loaded]
    return _json(items)


async def audit(request: web.Request) -> web.Response:
    entries = await _svc(request).audit.entries(_int(request, "limit", 100) or 100, _int(request, "before", None))
    return _json([p.AuditEntry(**vars_of(e)) for e in entries])


# --- writes --------------------------------------------------------------------------------------------
async def add_users(request: web.Request) -> web.Response:
    body, name = await _body(request, p.UsersChange), _list_name(request)
    users = [u.strip() for u in body.users]
    if problems := [problem for u in users if (problem := user_id_problem(u)) is not None]:
        what = "this id is" if len(problems) == 1 else f"these {len(problems)} ids are"
        return _error(400, "bad_user_id", f"nothing was added: {what} not valid: {'; '.join(problems)}", problems)
    policy = _svc(request).policy
    if name == "allow" and not policy.lists.allow and not body.confirm:
        shown = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
        warning = (
            f"the allow list is empty, so everyone may chat; once {shown} {'is' if len(users) == 1 else 'are'} on "
            "it, only the users on it and admins may — everyone else gets deny_reply. Confirm to add anyway."
        )
        return _error(409, "confirm_needed", warning)
    changed = await policy.add_users(name, users, operator(request))
    return _json(p.Changed(changed=changed))


async def remove_users(request: web.Request) -> web.Response:
    body = await _body(request, p.UsersChange)
    changed = await _svc(request).policy.remove_users(_list_name(request), body.users, operator(request))
    return _json(p.Changed(changed=changed))


async def add_words(request: web.Request) -> web.Response:
    body = await _body(request, p.WordsChange)
    return _json(p.Changed(changed=await _svc(request).policy.add_words(body.words, operator(request))))


async def remove_words(request: web.Request) -> web.Response:
    body = await _body(request, p.WordsChange)
    return _json(p.Changed(changed=await _svc(request).policy.remove_words(body.words, operator(request))))


async def reset_quota(request: web.Request) -> web.Response:
    body = await _body(request, p.QuotaReset)
    return _json(p.QuotaResetDone(cleared=await _op(request).reset_quota(body.user, operator(request))))


async def clear_context(request: web.Request) -> web.Response:
    await _op(request).clear_context(request.match_info["user"], operator(request))
    return web.json_response({"ok": True})


async def pause(request: web.Request) -> web.Response:
    body = await _body(request, p.PauseRequest)
    actions = _op(request)
    await actions.pause(body.notice, operator(request))
    return _json(await actions.status())


async def resume(request: web.Request) -> web.Response:
    actions = _op(request)
    await actions.resume(operator(request))
    return _json(await actions.status())


async def reload(request: web.Request) -> web.Response:
    result = await _op(request).reload()
    if result.errors:
        message = "the config file does not validate, so nothing was applied (the daemon runs as it was)"
        return _error(409, "invalid_config", message, result.errors)
    return _json(p.Reloaded(changed=result.changed, restart_needed=result.restart_needed))


async def retry(request: web.Request) -> web.Response:
    body = await _body(request, p.RetryRequest)
    return _json(p.RetryDone(woken=_op(request).retry(body.user, operator(request))))


async def playground(request: web.Request) -> web.Response:
    body = await _body(request, p.PlaygroundMessage)
    if (problem := user_id_problem(body.user)) is not None:
        return _error(400, "bad_user_id", problem)
    try:
        inbox_id = await _op(request).playground(body.user, body.text, operator(request), body.channel)
    except ValueError as exc:  # a channel that is not configured: the operator's input, not a fault
        return _error(400, "unknown_channel", str(exc))
    return _json(p.PlaygroundAccepted(inbox_id=inbox_id))


async def prune(request: web.Request) -> web.Response:
    body = await _body(request, p.PruneRequest)
    result = await _svc(request).pruner.run(body.days, dry_run=body.dry_run, actor=operator(request))
    zone = _svc(request).live.settings.timezone
    if result is None:
        return _json(p.PruneReport(days=0, dry_run=body.dry_run, timezone=zone))
    fields = {k: v for k, v in vars_of(result).items() if k in p.PruneReport.model_fields}
    return _json(p.PruneReport(**fields, timezone=zone))


# --- live events ---------------------------------------------------------------------------------------
def _sse(event: Event) -> bytes:
    wire = p.Event(seq=event.seq, kind=event.kind, at=event.at, data=event.data, dropped=event.dropped)
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {wire.model_dump_json()}\n\n".encode()


def _since(request: web.Request) -> int | None:
    value = request.query.get("since")
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) >= 2**62:
        raise web.HTTPBadRequest(reason="Bad Request", text="since must be an event number (0 or more)")
    return int(value)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events. A client that cannot keep up loses the oldest events and is told how many.

    With `since=N` (and `boot`, as the stream or the status named it): first a `stream.resumed` event (seq 0)
    saying what follows, then every kept event numbered after N, then live ones — subscribed before the backlog is
    read, so nothing falls between the two, and a live event already replayed is skipped."""
    services = _svc(request)
    since = _since(request)
    try:
        subscription = services.bus.subscribe()
    except TooManySubscribers as exc:
        log.warning("control: refused a live-event client: %d are connected already (the limit)", exc.limit)
        return _error(503, "too_many_clients", str(exc))
    bus = services.bus
    replay: list[Event] = []
    resumed: p.StreamResumed | None = None
    if since is not None:  # no await from subscribe() to here: the backlog ends where the subscription begins
        boot = request.query.get("boot")
        restarted = (bool(boot) and boot != bus.boot) or since > bus.last_seq
        if restarted:
            since = 0  # the client's number is from another run: all this run has kept is new to it
        replay, lost = bus.replay(since)
        resumed = p.StreamResumed(boot=bus.boot, since=since, replayed=len(replay), lost=lost, restarted=restarted)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Daemon-Boot": bus.boot}
    )
    idle = 0.0
    try:
        await response.prepare(request)
        last = since or 0
        if resumed is not None:
            head = p.Event(seq=0, kind="stream.resumed", at=time.time(), data=resumed.model_dump())
            await response.write(f"id: 0\nevent: {head.kind}\ndata: {head.model_dump_json()}\n\n".encode())
            for event in replay:
                await response.write(_sse(event))
                last = event.seq
        while not services.stopping.is_set():
            if request.transport is None or request.transport.is_closing():
                break  # the operator went away
            try:
                event = await asyncio.wait_for(subscription.get(), POLL)
            except TimeoutError:
                idle += POLL
                if idle >= KEEPALIVE:
                    await response.write(b": keepalive\n\n")
                    idle = 0.0
                continue
            idle = 0.0
            if event.seq <= last:
                continue  # replayed already
            await response.write(_sse(event))
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        subscription.close()
    return response


def make_control_app(services: Services) -> web.Application:
    app = web.Application(middlewares=[errors_as_json], client_max_size=1024 * 1024)
    app[SERVICES] = services
    r = app.router
    api = p.API
    r.add_get(f"{api}/status", status)
    r.add_get(f"{api}/conversations", conversations)
    r.add_get(f"{api}/users", users)
    r.add_get(f"{api}/users/{{user}}/history", history)
    r.add_post(f"{api}/users/{{user}}/context/clear", clear_context)
    r.add_get(f"{api}/quotas", quotas)
    r.add_post(f"{api}/quota/reset", reset_quota)
    r.add_get(f"{api}/lists", lists)
    r.add_post(f"{api}/lists/{{name}}/add", add_users)
    r.add_post(f"{api}/lists/{{name}}/remove", remove_users)
    r.add_get(f"{api}/words", words)
    r.add_post(f"{api}/words/add", add_words)
    r.add_post(f"{api}/words/remove", remove_words)
    r.add_get(f"{api}/templates", templates)
    r.add_get(f"{api}/audit", audit)
    r.add_post(f"{api}/pause", pause)
    r.add_post(f"{api}/resume", resume)
    r.add_post(f"{api}/reload", reload)
    r.add_post(f"{api}/retry", retry)
    r.add_post(f"{api}/playground", playground)
    r.add_post(f"{api}/prune", prune)
    r.add_get(f"{api}/logs", logs)
    r.add_get(f"{api}/events", events)
    return app
