"""The history page behind a `#查对话` link: one user's conversation as HTML, Markdown or JSON.

    GET /history/{token}                  readable HTML (questions, answers, times in the daemon's time zone)
    GET /history/{token}/history.md       the same as a Markdown download
    GET /history/{token}/history.json     the exchanges as JSON (protocol.Exchange), a download

The token (see `links`) names exactly one user and expires. A malformed, forged, altered or expired token gets
403 with one generic sentence — no user, no reason — and a warning in the log without the token. Nothing here
lists anything or serves a guessable name. Every response forbids scripts, framing, caching and referrers; the
page needs none of them, and everything from the conversation is HTML-escaped.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, tzinfo
from importlib import resources
from string import Template

from aiohttp import web
from pydantic import TypeAdapter

from chatgpt_wecom import protocol as p
from chatgpt_wecom.daemon.exchange_view import as_wire, history_markdown
from chatgpt_wecom.daemon.keys import SERVICES
from chatgpt_wecom.daemon.web.links import InvalidLink, LinkClaims

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}
REFUSAL = "链接无效或已过期。This link is invalid or has expired.\n"
MD_NAME, JSON_NAME = "history.md", "history.json"

_PAGE = Template(resources.files(__package__).joinpath("history.html").read_text(encoding="utf-8"))
_EXCHANGES = TypeAdapter(list[p.Exchange])

Handler = Callable[[web.Request, LinkClaims], Awaitable[web.Response]]


def _when(ts: float, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(ts, zone)


def _text_block(css: str, label: str, text: str) -> str:
    return f'<div class="{css}"><p class="label">{label}</p><p class="text">{html.escape(text)}</p></div>'


def _exchange_html(x: p.Exchange, zone: tzinfo) -> str:
    asked = _when(x.asked_at, zone)
    meta = [f'<time datetime="{asked.isoformat()}">{asked:%Y-%m-%d %H:%M:%S}</time>', html.escape(x.mode)]
    if x.model:
        meta.append(html.escape(x.model))
    if x.answer is not None:
        answer = _text_block("answer", "答 A", x.answer)
    else:
        error = html.escape(x.error or "unknown error")
        answer = (
            f'<div class="answer"><p class="label">答 A</p><p class="text error">(无回答 no answer: {error})</p></div>'
        )
    return (
        f'<article id="x{x.id}"><p class="meta">{" · ".join(meta)}</p>'
        f"{_text_block('question', '问 Q', x.question)}{answer}</article>"
    )


def render_page(user: str, items: list[p.Exchange], claims: LinkClaims, token: str, zone: tzinfo) -> str:
    """The HTML page. Links to the downloads are relative, so a path prefix in `service_url` still works."""
    body = (
        "\n".join(_exchange_html(x, zone) for x in items) or '<p class="empty">还没有对话记录。No conversation yet.</p>'
    )
    return _PAGE.substitute(
        user=html.escape(user),
        count=len(items),
        zone=html.escape(str(zone)),
        md_href=html.escape(f"{token}/{MD_NAME}"),
        json_href=html.escape(f"{token}/{JSON_NAME}"),
        exchanges=body,
        expires=f"{_when(claims.expires, zone):%Y-%m-%d %H:%M}",
    )


def _refuse(request: web.Request, reason: str) -> web.Response:
    log.warning("history: refused a link from %s: %s", request.remote or "?", reason)
    return web.Response(status=403, text=REFUSAL, content_type="text/plain", headers=SECURITY_HEADERS)


def _signed(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Check the token before anything else; the handler only ever sees a verified, unexpired link."""

    async def check(request: web.Request) -> web.Response:
        try:
            claims = request.app[SERVICES].links.claims(request.match_info["token"])
        except InvalidLink as exc:
            return _refuse(request, str(exc))
        return await handler(request, claims)

    return check


async def _exchanges(request: web.Request, user: str) -> list[p.Exchange]:
    return as_wire(await request.app[SERVICES].history.of_user(user))


def _download(body: str, content_type: str, filename: str) -> web.Response:
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'}
    return web.Response(text=body, content_type=content_type, charset="utf-8", headers=headers)


@_signed
async def page(request: web.Request, claims: LinkClaims) -> web.Response:
    """GET /history/{token}: the conversation as a readable page."""
    items = await _exchanges(request, claims.user)
    zone = request.app[SERVICES].live.settings.zone
    log.info("history: page of %s (%d exchanges) opened from %s", claims.user, len(items), request.remote or "?")
    text = render_page(claims.user, items, claims, request.match_info["token"], zone)
    return web.Response(text=text, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)


@_signed
async def markdown(request: web.Request, claims: LinkClaims) -> web.Response:
    """GET /history/{token}/history.md: the conversation as Markdown, the control API's format."""
    items = await _exchanges(request, claims.user)
    return _download(
        history_markdown(claims.user, items, request.app[SERVICES].live.settings.zone), "text/markdown", MD_NAME
    )


@_signed
async def as_json(request: web.Request, claims: LinkClaims) -> web.Response:
    """GET /history/{token}/history.json: the exchanges, oldest first, in protocol.Exchange's shape."""
    items = await _exchanges(request, claims.user)
    return _download(_EXCHANGES.dump_json(items, indent=2).decode(), "application/json", JSON_NAME)


def add_history_routes(app: web.Application) -> None:
    """Register the history routes. Call before the callback's catch-all `/{tail:.*}` routes."""
    app.router.add_get("/history/{token}", page)
    app.router.add_get(f"/history/{{token}}/{MD_NAME}", markdown)
    app.router.add_get(f"/history/{{token}}/{JSON_NAME}", as_json)
