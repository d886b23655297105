"""The two handlers bench/callback.py sets the daemon beside: the least a callback server can do, without and with
a durable commit.

``python bench/baselines.py PORT`` serves the *bare* handler on 127.0.0.1: read the body, parse the envelope,
verify the signature, decrypt, ack with ``200 ""``. Nothing else.

``python bench/baselines.py PORT --commit PATH`` adds what the daemon promises before it acks (persist before ack)
and nothing more: the decrypted document is inserted into a SQLite file at PATH before the ack. Like the daemon's
inbox, it uses WAL with ``synchronous=FULL`` (an fsync per commit) and group commit on one writer thread: what
arrives while one transaction is written goes into the next. It does not parse the message, keep a dedupe key or
any index but the row id, or announce anything. It is the cheapest durable handler, so it shows what durability
itself costs on the machine at hand.

Both answer ``GET /healthz``. They stop on SIGTERM.
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import web

from chatgpt_wecom.daemon.channels.wecom.crypto import CryptoError, WeComCrypto
from chatgpt_wecom.daemon.channels.wecom.messages import MessageError, parse_envelope
from tests.wecom_callbacks import TEST_AES_KEY, TEST_CORP_ID, TEST_TOKEN

MAX_BODY = 64 * 1024  # what the daemon's callback accepts


class Committer:
    """Group commit of plain rows on a thread of its own: `add()` returns once its row is durable."""

    def __init__(self, path: Path) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=FULL"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._conn.execute("CREATE TABLE IF NOT EXISTS received (id INTEGER PRIMARY KEY, document TEXT NOT NULL)")
        self._waiting: list[tuple[str, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, document: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((document, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches())
        await future

    async def _write_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await loop.run_in_executor(self._thread, self._insert, [(document,) for document, _ in batch])
            except sqlite3.Error as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for _, future in batch:
                future.set_result(None)

    def _insert(self, rows: list[tuple[str]]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT INTO received (document) VALUES (?)", rows)
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise


def app(committer: Committer | None) -> web.Application:
    crypto = WeComCrypto(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID)

    async def receive(request: web.Request) -> web.Response:
        q = request.query
        body = await request.read()
        try:
            envelope = parse_envelope(body)
            document = crypto.decrypt_message(
                q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""), envelope.encrypt
            )
        except (CryptoError, MessageError) as exc:
            return web.Response(status=403, text=str(exc))
        if committer is not None:
            try:
                await committer.add(document)
            except sqlite3.Error as exc:
                return web.Response(status=500, text=str(exc))
        return web.Response(text="")

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    application = web.Application(client_max_size=MAX_BODY)
    application.router.add_get("/healthz", healthz)
    application.router.add_post("/ai/callback", receive)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description="A baseline callback handler for bench/callback.py.")
    parser.add_argument("port", type=int)
    parser.add_argument("--commit", type=Path, metavar="PATH", help="commit each callback to SQLite at PATH first")
    args = parser.parse_args()
    committer = Committer(args.commit) if args.commit else None
    web.run_app(app(committer), host="127.0.0.1", port=args.port, access_log=None, print=None, handle_signals=True)


if __name__ == "__main__":
    main()
