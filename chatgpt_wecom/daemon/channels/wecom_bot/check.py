"""`chatgpt-wecom check` for the AI bot: open the WebSocket, subscribe once with the configured id and secret, close.

One subscribe only: the server rate-protects it. A refusal names its errcode and errmsg, never the secret.
"""

from __future__ import annotations

import json

import aiohttp

from chatgpt_wecom.config import Settings, redact_userinfo
from chatgpt_wecom.daemon.channels.wecom_bot import protocol

TIMEOUT = 10.0


async def check(settings: Settings) -> tuple[bool, str]:
    """(passed, what was found)."""
    where = redact_userinfo(settings.wecom_bot_ws_url)
    bot_id = settings.wecom_bot_id
    frame = protocol.subscribe(bot_id, settings.wecom_bot_secret.get_secret_value())
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
            http.ws_connect(settings.wecom_bot_ws_url, heartbeat=None) as ws,
        ):
            await ws.send_str(json.dumps(frame, ensure_ascii=False))
            while True:
                message = await ws.receive(timeout=TIMEOUT)
                if message.type != aiohttp.WSMsgType.TEXT:
                    return False, f"{where} closed the connection before answering the subscribe"
                try:
                    ack = protocol.parse(str(message.data))
                except ValueError:
                    continue
                if ack.req_id == frame["headers"]["req_id"]:
                    break
    except TimeoutError:
        return False, f"{where} did not answer the subscribe within {TIMEOUT:g} s"
    except aiohttp.ClientError as exc:
        reason = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
        return False, f"cannot open {where}: {reason}"
    if ack.errcode:
        return False, (f"{where} refused bot id {bot_id}: errcode {ack.errcode} {ack.errmsg}".strip() +
                       " (check wecom_bot_id and wecom_bot_secret: 智能机器人 → API 模式 → 长连接)")  # fmt: skip
    return True, f"subscribed to {where} as {bot_id} (the connection was closed again)"
