"""`chatgpt-wecom check` for the WeCom app: one gettoken call, no retries, its failure naming the errcode and fix;
then `agent/get` for agent_id, which must be the app whose Secret is configured (else no answer could be sent).

One attempt only, because WeCom bans an IP for an hour after repeated wrong secrets.
"""

from __future__ import annotations

import aiohttp

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.retry import RetryPolicy
from chatgpt_wecom.daemon.channels.wecom import egress
from chatgpt_wecom.daemon.channels.wecom.api import (
    ERR_TRANSPORT,
    WeComAPIError,
    WeComClient,
    WeComConfigError,
    WeComUnavailableError,
)

ONE_TRY = RetryPolicy(attempts=1, timeout=10.0, config_error_cooldown=0.0)
_BAN_NOTE = " (WeCom blocks this server's IP for an hour after repeated wrong secrets: fix it before retrying)"


def _short(errmsg: str) -> str:
    """WeCom's errmsg without its ", hint: […], from ip: …, more info at …" tail."""
    return errmsg.split(", hint:", maxsplit=1)[0].strip()[:120]


async def check(settings: Settings) -> tuple[bool, str]:
    """(passed, what was found): an access token from the configured API base, or why not."""
    base = settings.wecom_api_base
    via = egress.describe(settings.wecom_proxy)
    async with egress.session(settings.wecom_proxy) if settings.wecom_proxy else aiohttp.ClientSession() as session:
        client = WeComClient(
            session,
            api_base=base,
            corp_id=settings.corp_id,
            agent_id=settings.agent_id,
            secret=settings.agent_secret.get_secret_value(),
            retry=ONE_TRY,
            on_config_error=lambda _exc: None,  # reported by the check's line, not logged
        )
        try:
            await client.token()
        except WeComConfigError as exc:
            note = _BAN_NOTE if exc.errcode in (40001, 40091) else ""
            return False, f"errcode {exc.errcode} ({_short(exc.errmsg)}) from {base} ({via}) — {exc.hint}{note}"
        except WeComUnavailableError as exc:
            if exc.errcode == ERR_TRANSPORT:
                return False, f"cannot get an access token from {base} ({via}): {exc.errmsg}"
            return False, f"errcode {exc.errcode} ({_short(exc.errmsg)}) from {base}: WeCom is busy, try later"
        except WeComAPIError as exc:
            return False, f"errcode {exc.errcode} ({_short(exc.errmsg)}) from {base} ({via})"
        expires = client.token_state().expires_in or 0.0
        token = f"got an access token from {base}, calling {via} (expires in {round(expires)} s)"
        try:
            app = await client.agent()
        except WeComAPIError as exc:
            return False, (
                f"{token}, but agent_id {settings.agent_id} is not the app whose Secret is agent_secret: errcode "
                f"{exc.errcode} ({_short(exc.errmsg)}) — set agent_id to that app's AgentId (应用管理 → app → AgentId)"
            )
    return True, f"{token}; agent_id {settings.agent_id} is the app “{app.get('name', '?')}”"
