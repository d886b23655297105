"""DingTalk first visible text: when the asker first sees the answer, against when the model finished its first
paragraph and its whole answer.

Run from the repository root: ``.venv/bin/python bench/dingtalk_first_text.py``. Not a test: it prints figures
and exits 0 (1 when a run failed or timed out).

For each mode — ``stream_answers`` on ("streamed") and off ("not streamed") — it starts, on 127.0.0.1 and in this
process, a FakeDingTalk, a FakeModel and the real daemon configured for DingTalk alone (Stream mode), warms up
with one question (token, database, model connection), then pushes one bot message as a Stream CALLBACK frame and
starts the clock when the daemon ACKs it. FakeModel streams a fixed 8-paragraph Chinese answer (~1,160 characters)
at ``--chunk-chars`` characters every ``--chunk-delay`` seconds; not streamed, it answers after the same sleeps.

Measured from the ACK: the first and last sessionWebhook POST that FakeDingTalk accepted for the asker; when the
model had written its first paragraph and the blank line after it (computed from when the request reached
FakeModel and the fixed pace: the daemon cannot know a paragraph is finished before that); and the daemon's
``answer.finished`` event. The parts joined must give back the answer (checked).
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chatgpt_wecom.daemon.events import Subscription
from tests.daemon_runner import SOCKETS, DaemonRunner
from tests.dingtalk_runner import FAST_DING, dingtalk_settings
from tests.fakes.dingtalk import WEBHOOK, FakeDingTalk
from tests.fakes.model import FakeModel, ModelRequest

USER, WARMUP_USER = "bench-user", "bench-warmup"
QUESTION, WARMUP = "请介绍一下在企业内部部署大语言模型问答服务的步骤。", "你好"
SENTENCE = "部署之前先确认网络、权限与数据安全的要求，并准备好监控与告警。"  # 31 characters
PARAGRAPHS = [f"第{n}段：" + SENTENCE * (3 + n % 4) for n in range(1, 9)]
ANSWER = "\n\n".join(PARAGRAPHS)


@dataclass
class Result:
    mode: str
    first_text: float
    last_text: float
    first_paragraph: float  # when the model had written it (and the blank line after it)
    model_done: float
    messages: int
    complete: bool


def reply_for(chunk_chars: int, chunk_delay: float) -> Any:
    async def reply(request: ModelRequest) -> str:
        if request.last_user_text == WARMUP:
            return "你好！"
        if not request.json.get("stream"):
            for _ in range(1, math.ceil(len(ANSWER) / chunk_chars)):
                await asyncio.sleep(chunk_delay)
        return ANSWER

    return reply


async def stamp(events: Subscription, user: str, found: asyncio.Future[float]) -> None:
    async for event in events:
        if event.kind == "answer.finished" and event.data.get("user") == user:
            found.set_result(time.monotonic())
            return


async def run_once(args: argparse.Namespace, *, stream: bool) -> Result:
    mode = "streamed" if stream else "not streamed"
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        async with FakeDingTalk() as ding, FakeModel() as model:
            model.set_reply(reply_for(args.chunk_chars, args.chunk_delay))
            model.set_stream(chunk_chars=args.chunk_chars, chunk_delay=args.chunk_delay)
            settings = dingtalk_settings(Path(tmp), ding, model, stream_answers=stream)
            async with DaemonRunner(settings, FAST_DING) as daemon:
                assert daemon.services is not None
                await ding.wait_connected()
                await ding.push(ding.message(WARMUP, user=WARMUP_USER))
                await ding.wait_for(lambda: ding.replies(user=WARMUP_USER), args.timeout, "the warm-up answer")
                await daemon.idle(args.timeout)
                events = daemon.services.bus.subscribe()
                finished: asyncio.Future[float] = asyncio.get_running_loop().create_future()
                watcher = asyncio.create_task(stamp(events, USER, finished))
                try:
                    before = len(ding.requests)
                    await ding.push(ding.message(QUESTION, user=USER))
                    acked = time.monotonic()
                    await daemon.idle(args.timeout)
                    model_done = await asyncio.wait_for(finished, 5.0)
                finally:
                    watcher.cancel()
                    events.close()
            hooks = [r for r in ding.requests[before:] if r.path == WEBHOOK and r.status == 200]
            texts = ding.texts(user=USER)
            [asked] = [r for r in model.requests if r.last_user_text == QUESTION]
    if not hooks:
        raise RuntimeError(f"{mode}: nothing was delivered")
    first_chars = len(PARAGRAPHS[0]) + 2
    first_paragraph = asked.at - acked + (math.ceil(first_chars / args.chunk_chars) - 1) * args.chunk_delay  # 1st at 0
    return Result(mode, hooks[0].at - acked, hooks[-1].at - acked, first_paragraph, model_done - acked, len(texts),
                  "".join(texts).replace("\n", "") == ANSWER.replace("\n", ""))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chunk-chars", type=int, default=10, help="characters per streamed chunk (default 10)")
    parser.add_argument("--chunk-delay", type=float, default=0.05, help="seconds between chunks (default 0.05)")
    parser.add_argument("--timeout", type=float, default=60.0, help="hard limit per run, in seconds (default 60)")
    args = parser.parse_args()
    if args.chunk_chars < 1 or args.chunk_delay < 0 or args.timeout <= 0:
        parser.error("--chunk-chars must be ≥ 1, --chunk-delay ≥ 0 and --timeout > 0")
    rate = args.chunk_chars / args.chunk_delay if args.chunk_delay else float("inf")
    print(f"answer: {len(ANSWER)} chars, {len(ANSWER.encode())} bytes, {len(PARAGRAPHS)} paragraphs "
          f"(first: {len(PARAGRAPHS[0])} chars); model streams ~{rate:.0f} chars/s")  # fmt: skip

    async def both() -> list[Result]:
        results = []
        for stream in (True, False):
            async with asyncio.timeout(args.timeout):
                results.append(await run_once(args, stream=stream))
        return results

    try:
        results = asyncio.run(both())
    except (TimeoutError, AssertionError, RuntimeError) as exc:
        print(f"run failed: {type(exc).__name__}: {str(exc) or f'over {args.timeout:g} s'}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(SOCKETS, ignore_errors=True)
    print("seconds from the daemon's Stream ACK of the question")
    print(f"{'mode':<14}{'first text':>11}{'model 1st ¶':>12}{'lag':>8}{'last text':>11}{'model done':>12}{'msgs':>6}")
    for r in results:
        print(f"{r.mode:<14}{r.first_text:>11.2f}{r.first_paragraph:>12.2f}{r.first_text - r.first_paragraph:>+8.2f}"
              f"{r.last_text:>11.2f}{r.model_done:>12.2f}{r.messages:>6}"
              + ("" if r.complete else "  MISMATCH: the messages do not give back the answer"))  # fmt: skip
    streamed, whole = results
    print(f"first visible text: {streamed.first_text:.2f} s streamed vs {whole.first_text:.2f} s not streamed "
          f"({streamed.first_text / whole.first_text:.0%}); {streamed.first_text - streamed.first_paragraph:+.2f} s "
          "after the model's first paragraph")  # fmt: skip
    return 0 if all(r.complete for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
