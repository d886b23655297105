"""The demo's AI-bot stand-in: the WebSocket the daemon dials (as it dials WeCom's), and a chat window in the
browser where a newcomer asks and watches the answer grow in place.

Product code for `chatgpt-wecom demo`, not a test fixture: just enough of the protocol (wecom-aibot-protocol.md)
for the real daemon — subscribe with the demo's bot id and secret, JSON pings, every frame acknowledged — and
the page's small JSON API: `POST /api/ask {"text"}` sends a message from the demo user, `GET /api/chat` is the
chat as the user sees it (each streamed answer's newest text, finished or not, and the messages pushed after
it). Nothing leaves this machine.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any, Final

from aiohttp import WSMsgType, web

from chatgpt_wecom.demo.standins import _Server

__all__ = ["DEMO_BOT_ID", "DEMO_USER", "DemoAIBot"]

log = logging.getLogger(__name__)

DEMO_BOT_ID: Final = "aibDEMO0000000000"
DEMO_USER: Final = "newcomer"
KEEP: Final = 100  # chat entries remembered

PAGE: Final = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>chatgpt-wecom demo · AI bot</title>
<style>
body{font-family:sans-serif;max-width:44rem;margin:1rem auto;background:#f3f3f3}
#chat div{white-space:pre-wrap;margin:.4rem 0;padding:.5rem .7rem;border-radius:.5rem;max-width:85%}
.user{background:#95ec69;margin-left:auto!important}.bot{background:#fff}.growing{border-left:3px solid #07c160}
form{display:flex;gap:.5rem}input{flex:1;padding:.5rem}small{color:#777}
</style></head><body>
<h3>演示模式 · 企业微信智能机器人（本地模拟）</h3>
<small>Demo: a local stand-in of a WeCom AI-bot chat. The answer grows in place while the model writes.</small>
<div id="chat"></div>
<form id="f"><input id="q" autocomplete="off" placeholder="输入问题，回车发送"><button>发送</button></form>
<script>
const chat=document.getElementById('chat');
async function refresh(){
  const r=await fetch('api/chat');const items=await r.json();chat.replaceChildren();
  for(const m of items){const d=document.createElement('div');d.className=m.who+(m.growing?' growing':'');
    d.textContent=m.text;chat.appendChild(d);}
}
document.getElementById('f').onsubmit=async e=>{e.preventDefault();const q=document.getElementById('q');
  if(!q.value.trim())return;await fetch('api/ask',{method:'POST',headers:{'Content-Type':'application/json'},
  body:JSON.stringify({text:q.value})});q.value='';refresh();};
setInterval(refresh,300);refresh();
</script></body></html>
"""


class DemoAIBot(_Server):
    """One demo AI bot: its WebSocket at `ws_url`, its chat window at `base_url`."""

    def __init__(self, *, bot_id: str = DEMO_BOT_ID, secret: str) -> None:
        super().__init__()
        self.bot_id = bot_id
        self.secret = secret
        self.chat: list[dict[str, Any]] = []  # {who: user|bot, text, growing, key}
        self._ws: web.WebSocketResponse | None = None

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/ws"

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._socket)
        app.router.add_post("/api/ask", self._ask)
        app.router.add_get("/api/chat", self._chat)
        return app

    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def _chat(self, _request: web.Request) -> web.Response:
        return web.json_response([{k: v for k, v in m.items() if k != "key"} for m in self.chat])

    async def _ask(self, request: web.Request) -> web.Response:
        try:
            text = str((await request.json()).get("text") or "").strip()
        except (ValueError, AttributeError):
            text = ""
        if not text:
            raise web.HTTPBadRequest(text="text is required")
        if not self.connected:
            raise web.HTTPServiceUnavailable(text="the demo daemon is not connected yet")
        return web.json_response({"req_id": await self.ask(text)})

    async def ask(self, text: str, user: str = DEMO_USER) -> str:
        """A message from `user` in the private chat; the callback's req_id."""
        req_id = secrets.token_hex(16)
        self._remember({"who": "user", "text": text, "growing": False, "key": None})
        body = {"msgid": f"DEMO{time.time_ns()}", "aibotid": self.bot_id, "chattype": "single",
                "from": {"userid": user}, "msgtype": "text", "text": {"content": text}}  # fmt: skip
        await self._send({"cmd": "aibot_msg_callback", "headers": {"req_id": req_id}, "body": body})
        return req_id

    def _remember(self, entry: dict[str, Any]) -> None:
        self.chat.append(entry)
        del self.chat[:-KEEP]

    async def _send(self, frame: dict[str, Any]) -> None:
        if self._ws is None or self._ws.closed:
            raise ConnectionError("the demo daemon is not connected")
        await self._ws.send_str(json.dumps(frame, ensure_ascii=False))

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                frame = json.loads(message.data)
            except ValueError:
                continue
            req_id = str((frame.get("headers") or {}).get("req_id") or "")
            errcode, reply = self._handle(ws, str(frame.get("cmd") or ""), frame.get("body") or {})
            errmsg = "ok" if not errcode else "invalid credential (demo AI-bot stand-in)"
            ack: dict[str, Any] = {"headers": {"req_id": req_id}, "errcode": errcode, "errmsg": errmsg}
            if reply:
                ack["body"] = reply
            await ws.send_str(json.dumps(ack))
        if self._ws is ws:
            self._ws = None
        return ws

    def _handle(self, ws: web.WebSocketResponse, cmd: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The errcode and ack body of one frame (every frame is taken: it is a demo)."""
        if cmd == "aibot_subscribe":
            if body.get("bot_id") != self.bot_id or not secrets.compare_digest(str(body.get("secret")), self.secret):
                return 40001, {}
            self._ws = ws
            log.info("DEMO MODE — the daemon subscribed to the AI-bot stand-in")
        elif cmd == "aibot_respond_msg" and body.get("msgtype") == "stream":
            stream = body.get("stream") or {}
            key = stream.get("id")
            found = next((m for m in reversed(self.chat) if m["key"] == key), None)
            if found is None:
                found = {"who": "bot", "text": "", "growing": True, "key": key}
                self._remember(found)
            found["text"], found["growing"] = str(stream.get("content") or ""), not stream.get("finish")
        elif cmd == "aibot_send_msg":
            kind = body.get("msgtype")
            text = (body.get("markdown") or {}).get("content") if kind == "markdown" else f"[{kind}]"
            self._remember({"who": "bot", "text": str(text or ""), "growing": False, "key": None})
        elif cmd == "aibot_upload_media_init":
            return 0, {"upload_id": secrets.token_hex(8)}
        elif cmd == "aibot_upload_media_finish":
            return 0, {"type": "image", "media_id": f"DEMO{secrets.token_hex(6)}", "created_at": int(time.time())}
        return 0, {}
