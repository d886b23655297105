"""The daemon as a process under a slowloris flood bigger than its descriptor limit: callbacks still get in, and the
log stays a few lines (issue 8: at 1,024 descriptors, 1,100 slow connections stopped every callback and wrote
183,662 tracebacks in 30 s)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp

from tests.daemon_runner import AGENT_ID, DaemonProcess, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.wecom_callbacks import TEST_AES_KEY, TEST_CORP_ID, TEST_TOKEN, CallbackSigner

NOFILE = 256  # the daemon's RLIMIT_NOFILE, soft and hard
SLOW = 300  # stalled connections: more than the daemon has descriptors
WECOM_TIMEOUT = 5.0  # WeCom waits this long for the ack, then retries
SIGNER = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID, str(AGENT_ID))


async def _stalled(port: int, n: int) -> asyncio.StreamWriter | None:
    """A connection that sends the start of a request and then nothing (None if it could not connect in time)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3.0)
    except (OSError, TimeoutError):
        return None
    writer.write(f"POST /ai/callback?nonce={n} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Ty".encode())
    return writer


async def _callback(url: str, user: str, text: str, msg_id: int) -> tuple[int, str]:
    """One signed callback on a new connection, as WeCom sends it; (-1, error) if not answered in WeCom's time."""
    req = SIGNER.text(user, text, msg_id)
    timeout = aiohttp.ClientTimeout(total=WECOM_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), timeout=timeout) as http,
            http.post(f"{url}/ai/callback", params=req.query, data=req.body) as resp,
        ):
            return resp.status, await resp.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return -1, type(exc).__name__


async def test_slow_connections_beyond_the_descriptor_limit_stop_neither_callbacks_nor_flood_the_log(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonProcess(settings, tmp_path, nofile=NOFILE) as daemon:
        stalled = await asyncio.gather(*(_stalled(settings.port, n) for n in range(SLOW)))
        try:
            assert sum(w is not None for w in stalled) > NOFILE
            started = time.monotonic()
            assert await _callback(daemon.url, "u1", "洪水中的真消息", 1) == (200, "")
            acked_in = time.monotonic() - started
            await wecom.wait_for_sent(1, user="u1")
        finally:
            for writer in stalled:
                if writer is not None:
                    writer.close()
        assert await daemon.terminate() == 0
    log = daemon.log()
    lines = log.splitlines()
    assert acked_in < WECOM_TIMEOUT
    assert wecom.texts_to("u1") == ["echo: 洪水中的真消息"]
    assert "Traceback" not in log
    assert len(lines) < 60, f"{len(lines)} lines:\n" + "\n".join(lines[:80])
    # The connections closed to make room are a few lines and a count, written at the latest when it stopped.
    assert any("at the cap of" in line for line in lines), log
    assert any(re.search(r"at the cap of .*\(repeated [\d,]+ times in the last", line) for line in lines), log
