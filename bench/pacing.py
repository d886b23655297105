"""Per-member pacing: how many messages a user really reads when they ask quickly, with pacing on and off.

WeCom answers "ok" and drops every message beyond 30 a minute (1,000 an hour) to one member from one app. The
stand-in WeCom (tests/fakes/wecom.py) drops the same way. Time is scaled down (`--scale 10`: 30 per 6 s) so a run
takes seconds; the ratio of messages to the window is WeCom's. Each question gets an answer of `--parts` parts
(non-streamed paragraphs of ~1.9 KB, so none can merge).

Run: `.venv/bin/python bench/pacing.py` (both modes), figures printed per mode: messages sent by the daemon,
read by the user, dropped, and the time from the first question to the last message read.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatgpt_wecom.daemon.pipeline.pacing import Rate
from tests.daemon_runner import FAST, SOCKETS, DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import SEND, FakeWeCom
from tests.wecom_callbacks import TEST_CORP_ID


async def run(paced: bool, questions: int, parts: int, scale: float) -> dict[str, float]:
    window = 60.0 / scale
    tmp = Path(tempfile.mkdtemp())
    try:
        async with FakeWeCom(corp_id=TEST_CORP_ID, member_rates=((30, window),)) as wecom, FakeModel() as model:
            paragraph = "这是一段足够长的回答，" * 60  # 1,980 bytes: one part each, too big to merge
            model.set_reply("\n\n".join(f"{n}. {paragraph}" for n in range(parts)))
            settings = make_settings(tmp, wecom, model, stream_answers=False)
            tuning = replace(FAST, member_rates=(Rate(30, window),) if paced else ())
            async with DaemonRunner(settings, tuning) as daemon:
                start = time.monotonic()
                for n in range(questions):
                    await daemon.ask("alice", f"问题 {n}", 7_000_000 + n)
                await daemon.idle(timeout=30 * window)
                last = max((r.at for r in wecom.requests_to(SEND)), default=start)
            return {
                "sent": len(wecom.requests_to(SEND)),
                "read": len(wecom.texts_to("alice")),
                "dropped": len(wecom.dropped),
                "seconds": last - start,
                "window": window,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(SOCKETS, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--scale", type=float, default=10.0, help="time runs this much faster than WeCom's")
    args = parser.parse_args()
    print(
        f"{args.questions} quick questions, {args.parts} parts each; WeCom's limit 30 per minute, time ÷ {args.scale:g}"
    )
    for paced in (False, True):
        r = await run(paced, args.questions, args.parts, args.scale)
        print(
            f"pacing {'on ' if paced else 'off'}: sent {r['sent']:.0f}, read {r['read']:.0f},"
            f" dropped {r['dropped']:.0f},"
            f" last message after {r['seconds']:.1f} s = {r['seconds'] / r['window']:.2f} windows"
            f" (≈ {r['seconds'] * args.scale:.0f} s at WeCom's pace)"
        )


if __name__ == "__main__":
    asyncio.run(main())
