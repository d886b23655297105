"""AI bot streaming benchmark: how soon the user sees something, and how many frames a long answer takes.

Run from the repository root: ``.venv/bin/python bench/aibot_stream.py``. Not a test: it prints figures and exits
0 (1 when the run failed or timed out).

It starts, on 127.0.0.1 in this process, a FakeAIBot (the WebSocket), a FakeModel and the real daemon with the
production connection policy (a frame at most every 0.7 s, each awaiting its ack). FakeModel streams a
deterministic Chinese answer of ``--chars`` characters, ``--chunk-chars`` every ``--chunk-delay`` s (default
3,000 characters at about 200 a second: ~15 s, a realistic LLM pace). One warm-up question first.

Measured from the moment the callback is pushed: the first frame on the wire (the "思考中…" bubble), the first
frame with answer text, the finish frame; the model's own first and last piece for comparison (its pace);
frames per answer, the gaps between frames, and the largest frame. The finished text must equal the answer.
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import itertools

from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy
from tests.aibot_runner import BOT_FAST, bot_settings
from tests.daemon_runner import SOCKETS, DaemonRunner
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.fakes.wecom_bot import FakeAIBot

TEXT = "企业内部部署大语言模型问答服务需要考虑数据安全、访问控制、成本与可用性。"


def answer_of(chars: int) -> str:
    paragraphs, out = [], ""
    while len(out) < chars:
        paragraphs.append(TEXT * 4)
        out = "\n\n".join(paragraphs)
    return out[:chars]


async def run(args: argparse.Namespace, workdir: Path) -> int:
    answer = answer_of(args.chars)
    async with FakeWeCom() as wecom, FakeModel() as model, FakeAIBot() as bot:
        settings = bot_settings(workdir, wecom, model, bot)
        tuning = replace(BOT_FAST, connection=ConnectionPolicy())  # production pacing: 0.7 s, 5 s ack timeout
        async with DaemonRunner(settings, tuning) as daemon:
            await bot.wait_for(lambda: bot.subscribed, what="a subscribe")
            model.set_reply("你好")
            warm, _ = await bot.push_text("warmup", "你好")
            await bot.wait_finished(warm)
            await daemon.idle()
            model.set_reply(answer)
            model.set_stream(chunk_chars=args.chunk_chars, chunk_delay=args.chunk_delay)
            started = time.monotonic()
            req_id, _ = await bot.push_text("bench-user", "请详细介绍一下如何部署")
            stream = await bot.wait_finished(req_id, timeout=args.timeout)
            await daemon.idle()
    frames = [f for f in bot.sent_frames("aibot_respond_msg") if f.req_id == req_id]
    if stream.text != answer:
        print("FAILED: the finished text is not the answer", file=sys.stderr)
        return 1
    first, last = frames[0].at - started, frames[-1].at - started
    with_text = next(f.at for f in frames if f.body["stream"]["content"] not in ("思考中…",)) - started
    model_time = args.chars / args.chunk_chars * args.chunk_delay
    gaps = [b.at - a.at for a, b in itertools.pairwise(frames)]
    biggest = max(len(f.body["stream"]["content"].encode()) for f in frames)
    print(f"answer: {args.chars} characters, {len(answer.encode())} bytes; model pace {args.chunk_chars} chars / "
          f"{args.chunk_delay} s (~{model_time:.1f} s to write)")  # fmt: skip
    print(f"first frame (bubble)        {first * 1000:8.1f} ms after the callback")
    print(f"first frame with text       {with_text * 1000:8.1f} ms")
    print(f"finish frame                {last:8.2f} s   (model done after ~{model_time:.2f} s)")
    print(f"frames per answer           {len(frames):8d}   (incl. bubble and finish)")
    print(f"gap between frames          median {statistics.median(gaps):.2f} s, min {min(gaps):.2f} s, "
          f"max {max(gaps):.2f} s")  # fmt: skip
    print(f"largest frame               {biggest:8d} bytes")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chars", type=int, default=3000)
    parser.add_argument("--chunk-chars", type=int, default=10)
    parser.add_argument("--chunk-delay", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="aibot-bench-"))
    try:
        return asyncio.run(run(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(SOCKETS, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
