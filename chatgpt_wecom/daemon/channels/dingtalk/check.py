"""`chatgpt-wecom check` for DingTalk: per app, an access token and — in Stream mode — a gateway ticket (which
proves the AppKey/AppSecret and that Stream mode is open to this app; the ticket is single-use and simply
expires unused). One attempt each, no retries; a refusal names the console setting or permission to fix."""

from __future__ import annotations

import asyncio

import aiohttp

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.dingtalk.api import DingTalkClient, DingTalkConfigError, DingTalkError
from chatgpt_wecom.daemon.channels.dingtalk.stream import SUBSCRIPTIONS, UA
from chatgpt_wecom.daemon.channels.retry import RetryPolicy

ONE_TRY = RetryPolicy(attempts=1, timeout=10.0, config_error_cooldown=0.0)


async def _one(client: DingTalkClient, stream: bool) -> tuple[bool, str]:
    try:
        await client.token()
        if stream:
            await client.open_connection(SUBSCRIPTIONS, UA)
    except DingTalkConfigError as exc:
        return False, f"app {client.client_id}: {exc} — {exc.hint}"
    except DingTalkError as exc:
        return False, f"app {client.client_id}: {exc}"
    return True, f"app {client.client_id}: access token{' and Stream ticket' if stream else ''} ok"


async def check(settings: Settings) -> tuple[bool, str]:
    """(passed, what was found) over every configured app."""
    stream = settings.run_mode == "stream"
    async with aiohttp.ClientSession() as session:
        clients = [
            DingTalkClient(
                session,
                client_id=app.client_id,
                client_secret=app.client_secret.get_secret_value(),
                api_base=settings.dingtalk_api_base,
                oapi_base=settings.dingtalk_oapi_base,
                retry=ONE_TRY,
            )
            for app in settings.credentials
        ]
        verdicts = await asyncio.gather(*(_one(c, stream) for c in clients))
    where = f"{settings.dingtalk_api_base} ({settings.run_mode} mode)"
    return all(ok for ok, _ in verdicts), f"{where}: " + "; ".join(line for _, line in verdicts)
