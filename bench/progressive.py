"""Progressive delivery benchmark: time to the first delivered part against time to the full answer.

Run from the repository root: ``.venv/bin/python bench/progressive.py``. Not a test: it prints figures and exits
0 (1 only when a run failed or timed out).

For each mode — ``stream_answers`` on ("streamed") and off ("not streamed") — it starts, on 127.0.0.1 and in this
process, a fresh FakeWeCom, a FakeModel and the real daemon (``serve()`` via ``DaemonRunner``, data in a temp
dir), then:

1. warms up: two short questions from other users, so the access token is cached, the database is open and the
   model client's connection is in use (in a fresh process the second model call paid a one-off ~0.09 s);
2. sends one signed text callback and starts the clock when the daemon has acked it (``200 ""``);
3. FakeModel streams a fixed ~3,000-character Chinese answer of 10 paragraphs (deterministic) at a fixed rate:
   ``--chunk-chars`` characters every ``--chunk-delay`` seconds (default 10 per 0.05 s, about 200 characters a
   second: ~15 s for the whole answer, a realistic LLM pace). Not streamed, the daemon asks without ``stream``
   and FakeModel answers with the whole text after the same number of the same sleeps: the model writes at one
   pace either way, only the delivery differs;
4. waits until the daemon is idle (every part delivered), within ``--timeout`` seconds per run.

Measured from the ack: when the first and the last accepted ``message/send`` of that answer reached FakeWeCom
(``RecordedRequest.at``), and when the model had finished (the daemon's ``answer.finished`` event, stamped with
``time.monotonic()`` as this process receives it). Also the number of parts and the largest part in bytes; the
parts joined must give back the answer (checked). The daemon runs in-process: it measures latency at a fixed model
rate, not CPU, so sharing the event loop with the stand-ins costs little here.
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import math
import random
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
from tests.daemon_runner import AGENT_ID, SOCKETS, DaemonRunner, make_settings
from tests.fakes.model import FakeModel, ModelRequest
from tests.fakes.wecom import SEND, FakeWeCom
from tests.wecom_callbacks import TEST_CORP_ID

SEED = 20261121
USER = "bench-user"
WARMUP_USER = "bench-warmup"
QUESTION = "请详细介绍一下如何在企业内部部署一个大语言模型问答服务。"
WARMUP_QUESTION = "你好"
WARMUP_REPLY = "你好！有什么可以帮你？"
# Characters per paragraph: a short opening, longer body paragraphs, a short conclusion. With the 9 blank-line
# separators (2 characters each) the answer is exactly 3,000 characters.
PARAGRAPH_CHARS = (150, 320, 380, 290, 350, 310, 270, 400, 320, 192)

WORD_TEXT = (
    "部署 模型 服务 企业 内部 网络 安全 数据 用户 权限 配置 接口 日志 监控 性能 延迟 并发 缓存 队列 消息 "
    "回调 加密 签名 令牌 存储 备份 恢复 版本 测试 发布 文档 运维 告警 容量 成本 质量 反馈 评估 指标 流程 "
    "管理员 服务器 数据库 负载均衡 访问控制 敏感信息 上下文 知识库 向量检索 提示词 温度 采样 流式输出 "
    "首先 其次 另外 同时 因此 但是 如果 那么 一般来说 需要注意的是 在实际使用中 可以考虑 建议 我们 系统 "
    "稳定 可靠 简单 灵活 合理 及时 充分 明确 逐步 定期 自动 手动 统一 独立 完整"
)
WORDS = WORD_TEXT.split()


def make_answer(rng: random.Random) -> str:
    """10 paragraphs of plausible Chinese prose (words, commas, full stops), PARAGRAPH_CHARS long each."""
    paragraphs: list[str] = []
    for n, size in enumerate(PARAGRAPH_CHARS, 1):
        text = f"{n}. " if 1 < n < len(PARAGRAPH_CHARS) else ""
        clause = 0
        while len(text) < size - 1:
            text += rng.choice(WORDS)
            clause += 1
            if clause >= rng.randint(3, 6):
                text += "。" if rng.random() < 0.4 else "，"
                clause = 0
        body = text[: size - 1]
        if body[-1] in "，。":  # no "，。" at the end
            body = body[:-1] + "用"
        paragraphs.append(body + "。")
    return "\n\n".join(paragraphs)


@dataclass
class Result:
    mode: str
    first_part: float  # seconds from the ack to the first part's arrival at FakeWeCom
    last_part: float  # … to the last part's
    model_done: float  # … to the answer.finished event
    model_start: float  # … to the model request's arrival at FakeModel (negative: before the ack)
    part_bytes: list[int]
    complete: bool  # the parts joined give back the answer


async def stamp_finished(events: Subscription, user: str, found: asyncio.Future[float]) -> None:
    """Resolve `found` with time.monotonic() when `user`'s answer.finished event comes."""
    async for event in events:
        if event.kind == "answer.finished" and event.data.get("user") == user:
            found.set_result(time.monotonic())
            return


def reply_for(answer: str, chunk_chars: int, chunk_delay: float) -> Any:
    """The model's answers. A request without `stream` gets the whole answer only after the time the same answer
    takes to stream (the same sleeps, so the same timer overhead): the model writes at one pace either way."""

    async def reply(request: ModelRequest) -> str:
        if request.last_user_text == WARMUP_QUESTION:
            return WARMUP_REPLY
        if not request.json.get("stream"):
            for _ in range(1, math.ceil(len(answer) / chunk_chars)):
                await asyncio.sleep(chunk_delay)
        return answer

    return reply


async def run_once(args: argparse.Namespace, answer: str, *, stream: bool) -> Result:
    mode = "streamed" if stream else "not streamed"
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        async with FakeWeCom(corp_id=TEST_CORP_ID, agent_id=AGENT_ID) as wecom, FakeModel() as model:
            model.set_reply(reply_for(answer, args.chunk_chars, args.chunk_delay))
            model.set_stream(chunk_chars=args.chunk_chars, chunk_delay=args.chunk_delay)
            settings = make_settings(Path(tmp), wecom, model, stream_answers=stream)
            async with DaemonRunner(settings) as daemon:
                assert daemon.services is not None
                for n in (1, 2):
                    await daemon.ask(f"{WARMUP_USER}-{n}", WARMUP_QUESTION, n)
                    await daemon.idle(args.timeout)

                events = daemon.services.bus.subscribe()
                finished: asyncio.Future[float] = asyncio.get_running_loop().create_future()
                watcher = asyncio.create_task(stamp_finished(events, USER, finished))
                try:
                    await daemon.ask(USER, QUESTION, 3)
                    acked = time.monotonic()
                    await daemon.idle(args.timeout)
                    model_done = await asyncio.wait_for(finished, 5.0)
                finally:
                    watcher.cancel()
                    events.close()

            sends = [r for r in wecom.requests_to(SEND) if r.errcode == 0 and r.json.get("touser") == USER]
            contents = [str(r.json[r.json["msgtype"]]["content"]) for r in sends]
            [asked] = [r for r in model.requests if r.last_user_text == QUESTION]
    if not sends:
        raise RuntimeError(f"{mode}: nothing was delivered")
    return Result(
        mode=mode,
        first_part=sends[0].at - acked,
        last_part=sends[-1].at - acked,
        model_done=model_done - acked,
        model_start=asked.at - acked,
        part_bytes=[len(c.encode()) for c in contents],
        complete="".join(contents).replace("\n", "") == answer.replace("\n", ""),
    )


def print_table(results: list[Result]) -> None:
    print(f"{'mode':<14}{'first part s':>13}{'last part s':>12}{'model done s':>13}{'parts':>7}{'max part B':>11}")
    for r in results:
        print(
            f"{r.mode:<14}{r.first_part:>13.2f}{r.last_part:>12.2f}{r.model_done:>13.2f}"
            f"{len(r.part_bytes):>7}{max(r.part_bytes):>11}"
        )
    for r in results:
        sizes = ", ".join(map(str, r.part_bytes))
        check = "" if r.complete else "  (MISMATCH: the parts do not give back the answer)"
        print(f"{r.mode} part bytes: {sizes}{check}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chunk-chars", type=int, default=10, help="characters per streamed chunk (default 10)")
    parser.add_argument(
        "--chunk-delay", type=float, default=0.05, help="seconds between chunks (default 0.05: ~200 chars/s)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="hard limit per run, in seconds (default 60)")
    args = parser.parse_args()
    if args.chunk_chars < 1 or args.chunk_delay < 0 or args.timeout <= 0:
        parser.error("--chunk-chars must be ≥ 1, --chunk-delay ≥ 0 and --timeout > 0")

    answer = make_answer(random.Random(SEED))
    rate = args.chunk_chars / args.chunk_delay if args.chunk_delay else float("inf")
    print(
        f"answer: {len(answer)} chars, {len(answer.encode())} bytes, {len(PARAGRAPH_CHARS)} paragraphs; "
        f"model streams {args.chunk_chars} chars every {args.chunk_delay:g} s (~{rate:.0f} chars/s)"
    )

    async def both() -> list[Result]:
        results: list[Result] = []
        for stream in (True, False):
            async with asyncio.timeout(args.timeout):
                results.append(await run_once(args, answer, stream=stream))
        return results

    try:
        results = asyncio.run(both())
    except (TimeoutError, AssertionError, RuntimeError) as exc:
        print(f"run failed: {type(exc).__name__}: {str(exc) or f'over {args.timeout:g} s'}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(SOCKETS, ignore_errors=True)  # make_settings' control socket dirs, this process's own
    print("times in seconds from the daemon's ack of the callback")
    print_table(results)
    streamed, whole = results
    print(
        f"first part / full answer: {streamed.first_part:.2f} / {streamed.last_part:.2f} s = "
        f"{streamed.first_part / streamed.last_part:.1%} streamed; not streamed the first part comes at "
        f"{whole.first_part:.2f} s ({whole.first_part / whole.last_part:.1%} of its full answer)"
    )
    print(
        f"model request reached FakeModel {streamed.model_start:+.3f} s / {whole.model_start:+.3f} s from the ack; "
        f"last part after model done: {streamed.last_part - streamed.model_done:+.3f} s / "
        f"{whole.last_part - whole.model_done:+.3f} s"
    )
    return 0 if all(r.complete for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
