"""Build correctly encrypted and signed WeCom callback requests for end-to-end tests.

Usage with aiohttp's test client (pass ``query`` as ``params`` so ``+``/``/``/``=`` get percent-encoded)::

    signer = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID)
    req = signer.text("zhangsan", "hello", msg_id=1)
    await client.post("/ai/callback", params=req.query, data=req.body)
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from xml.sax.saxutils import escape

from chatgpt_wecom.daemon.channels.wecom.crypto import WeComCrypto

__all__ = ["TEST_AES_KEY", "TEST_CORP_ID", "TEST_TOKEN", "CallbackSigner", "SignedRequest", "cdata"]

TEST_CORP_ID = "ww1436e0e65a779aee"
TEST_TOKEN = "TestToken0123456789abcdef"
TEST_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 chars


@dataclass
class SignedRequest:
    """Query parameters and body of one callback request, as WeCom would send it."""

    query: dict[str, str]  # msg_signature, timestamp, nonce (and echostr for GET)
    body: bytes  # b"" for GET


def cdata(value: str) -> str:
    """Wrap ``value`` in CDATA so that an XML parser returns it exactly.

    ``]]>`` is split across two CDATA sections and ``\\r`` is emitted as ``&#13;`` (XML would otherwise
    normalise it to ``\\n``). Characters that XML forbids outright (e.g. NUL) cannot be represented.
    """
    body = value.replace("]]>", "]]]]><![CDATA[>").replace("\r", "]]>&#13;<![CDATA[")
    return f"<![CDATA[{body}]]>"


class CallbackSigner:
    """Produce WeCom callback requests (GET URL check, POST messages/events) for one test identity."""

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str, agent_id: str = "1000002") -> None:
        self.token = token
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.crypto = WeComCrypto(token, encoding_aes_key, corp_id)

    def text(self, user: str, content: str, msg_id: int | str, create_time: int | None = None) -> SignedRequest:
        """A signed POST carrying a text message from ``user``."""
        return self.message(
            self._inner(
                user,
                "text",
                create_time,
                f"<Content>{cdata(content)}</Content><MsgId>{escape(str(msg_id))}</MsgId>",
            )
        )

    def event(self, user: str, event: str, event_key: str = "", create_time: int | None = None) -> SignedRequest:
        """A signed POST carrying an event (``enter_agent``, ``click``, ...) from ``user``."""
        extra = f"<Event>{cdata(event)}</Event><EventKey>{cdata(event_key)}</EventKey>"
        return self.message(self._inner(user, "event", create_time, extra))

    def message(self, inner_xml: str) -> SignedRequest:
        """A signed POST carrying arbitrary decrypted XML, encrypted for this corp."""
        encrypt = self.crypto.encrypt(inner_xml)
        return SignedRequest(query=self._signed_query(encrypt), body=self.envelope(encrypt))

    def url_check(self, echo: str) -> SignedRequest:
        """A signed GET URL verification whose expected response body is ``echo``."""
        echostr = self.crypto.encrypt(echo)
        return SignedRequest(query={**self._signed_query(echostr), "echostr": echostr}, body=b"")

    def envelope(self, encrypt: str, to_user: str | None = None) -> bytes:
        """The outer POST body around ``encrypt`` (``to_user`` defaults to the CorpID)."""
        to = self.corp_id if to_user is None else to_user
        return (
            f"<xml><ToUserName>{cdata(to)}</ToUserName>"
            f"<Encrypt>{cdata(encrypt)}</Encrypt>"
            f"<AgentID>{cdata(self.agent_id)}</AgentID></xml>"
        ).encode()

    def _inner(self, user: str, msg_type: str, create_time: int | None, extra: str) -> str:
        ts = int(time.time()) if create_time is None else create_time
        return (
            f"<xml><ToUserName>{cdata(self.corp_id)}</ToUserName>"
            f"<FromUserName>{cdata(user)}</FromUserName>"
            f"<CreateTime>{ts}</CreateTime>"
            f"<MsgType>{cdata(msg_type)}</MsgType>"
            f"{extra}"
            f"<AgentID>{escape(self.agent_id)}</AgentID></xml>"
        )

    def _signed_query(self, encrypt: str) -> dict[str, str]:
        timestamp = str(int(time.time()))
        nonce = str(secrets.randbelow(10**10))
        return {
            "msg_signature": self.crypto.sign(timestamp, nonce, encrypt),
            "timestamp": timestamp,
            "nonce": nonce,
        }
