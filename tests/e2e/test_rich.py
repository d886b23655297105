"""Rich messages end to end: #图片, #查对话 links, voice and image input, progressive delivery."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import aiohttp

from chatgpt_wecom.daemon.events import Event
from tests.daemon_runner import MSG_IDS, DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom

DATA = Path(__file__).parent.parent / "data"


def media_message(kind: str, user: str, media_id: str, corp: str, extra: str = "") -> str:
    return (
        f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>"
        f"<MediaId><![CDATA[{media_id}]]></MediaId>{extra}<MsgId>{next(MSG_IDS)}</MsgId>"
        "<AgentID>1000002</AgentID></xml>"
    )


async def test_image_generation_uploads_and_sends_an_image(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, max_request=1, sensitive_words=["机密"])
    async with DaemonRunner(settings) as daemon:
        await daemon.say("u1", "#图片")
        assert "用法" in wecom.texts_to("u1")[-1]
        await daemon.say("u1", "#图片 机密文件")
        assert "不允许的词" in wecom.texts_to("u1")[-1]
        await daemon.say("u1", "#图片 一只在月球上看书的橘猫")
        await daemon.say("u1", "#图片 再来一张")  # over the quota of 1
    (generation,) = [r for r in model.requests if r.kind == "image"]
    assert generation.json["prompt"] == "一只在月球上看书的橘猫"
    assert generation.json["model"] == "dall-e-3" and generation.json["size"] == "1024x1024"
    (upload,) = wecom.requests_to("/cgi-bin/media/upload")
    assert upload.query["type"] == "image" and FakeModel.PNG in upload.body
    images = [m for m in wecom.messages_to("u1") if m["msgtype"] == "image"]
    assert len(images) == 1 and images[0]["image"]["media_id"]
    assert "用完" in wecom.texts_to("u1")[-1]
    assert list((settings.data_dir / "images").glob("*.png"))


async def test_image_refused_by_the_content_policy(daemon: DaemonRunner, wecom: FakeWeCom, model: FakeModel) -> None:
    model.fail(400, body={"error": {"code": "content_policy_violation", "message": "rejected"}})
    await daemon.say("u1", "#图片 不合适的东西")
    assert "内容审核" in wecom.texts_to("u1")[-1]
    assert wecom.requests_to("/cgi-bin/media/upload") == []


async def test_history_link_for_admins(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, admin_users=["boss"], service_url="https://bot.example.com")
    async with DaemonRunner(settings) as daemon:
        await daemon.say("alice", "今天天气怎么样")
        await daemon.say("eve", "#查对话 username:alice")
        assert wecom.texts_to("eve")[-1] == "只有管理员可以使用这个命令。"
        await daemon.say("boss", "#查对话 username:alice")
        reply = wecom.texts_to("boss")[-1]
        match = re.search(r"https://bot\.example\.com(/history/\S+)", reply)
        assert match, reply
        async with aiohttp.ClientSession() as http, http.get(daemon.url + match[1]) as page:
            html = await page.text()
            assert page.status == 200
        assert "今天天气怎么样" in html and "echo: 今天天气怎么样" in html
        async with aiohttp.ClientSession() as http, http.get(daemon.url + match[1] + "x") as forged:
            assert forged.status == 403 and "alice" not in await forged.text()


async def test_history_link_needs_service_url(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, admin_users=["boss"])
    async with DaemonRunner(settings) as daemon:
        await daemon.say("boss", "#查对话 alice")
    assert "service_url" in wecom.texts_to("boss")[-1]


async def test_voice_is_heard_shown_and_answered(daemon: DaemonRunner, wecom: FakeWeCom, model: FakeModel) -> None:
    wecom.add_media("voice-1", (DATA / "voice_hello.amr").read_bytes(), "audio/amr")
    model.set_transcript("今天星期几")
    message = media_message("voice", "u1", "voice-1", daemon.signer.corp_id, "<Format><![CDATA[amr]]></Format>")
    assert await daemon.post(daemon.signer.message(message)) == (200, "")
    await daemon.idle()
    # what was heard leads the answer, in the same message
    assert wecom.texts_to("u1") == ["🎤 听到的是：「今天星期几」\n\necho: 今天星期几"]
    (transcription,) = [r for r in model.requests if r.kind == "transcription"]
    assert transcription.upload is not None and transcription.upload.data[:4] == b"RIFF"  # converted to WAV
    assert transcription.json["model"] == "whisper-1"


async def test_unreadable_voice_gets_a_reply(daemon: DaemonRunner, wecom: FakeWeCom, model: FakeModel) -> None:
    wecom.add_media("voice-2", b"not audio at all" * 10, "audio/amr")
    assert await daemon.post(daemon.signer.message(media_message("voice", "u1", "voice-2", daemon.signer.corp_id))) == (
        200,
        "",
    )
    await daemon.idle()
    assert "没能听清" in wecom.texts_to("u1")[-1]
    assert [r for r in model.requests if r.kind == "chat"] == []


async def test_picture_then_question_goes_to_the_vision_model(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model, vision_model="gpt-4o")
    png = (DATA / "tiny.png").read_bytes()
    wecom.add_media("pic-1", png, "image/png")
    async with DaemonRunner(settings) as daemon:
        message = media_message("image", "u1", "pic-1", daemon.signer.corp_id, "<PicUrl><![CDATA[http://x]]></PicUrl>")
        assert await daemon.post(daemon.signer.message(message)) == (200, "")
        await daemon.idle()
        assert "收到图片" in wecom.texts_to("u1")[-1]
        await daemon.say("u1", "图里有什么")
        await daemon.say("u1", "再说一遍")  # the picture was used once; this goes to the text model
    vision, text = [r for r in model.requests if r.kind == "chat"]
    assert vision.json["model"] == "gpt-4o" and vision.last_user_text == "图里有什么"
    assert vision.images == ["data:image/png;base64," + base64.b64encode(png).decode()]
    assert text.json["model"] == settings.model and text.images == []


async def test_picture_without_a_vision_model_says_so(daemon: DaemonRunner, wecom: FakeWeCom) -> None:
    wecom.add_media("pic-2", (DATA / "tiny.png").read_bytes(), "image/png")
    assert await daemon.post(daemon.signer.message(media_message("image", "u1", "pic-2", daemon.signer.corp_id))) == (
        200,
        "",
    )
    await daemon.idle()
    assert "vision_model" in wecom.texts_to("u1")[-1]


async def test_progressive_delivery_sends_the_first_part_before_the_answer_ends(
    daemon: DaemonRunner, wecom: FakeWeCom, model: FakeModel
) -> None:
    paragraphs = [f"第{n}段：" + "流式输出的内容。" * 20 for n in range(1, 9)]
    model.set_reply("\n\n".join(paragraphs))
    model.set_stream(chunk_chars=25, chunk_delay=0.01)
    assert daemon.services is not None
    events = daemon.services.bus.subscribe()
    await daemon.ask("u1", "写一篇长文", 1)
    await daemon.idle()
    kinds = drain(events)
    first_sent = kinds.index("delivery.sent")
    assert first_sent < kinds.index("answer.finished")  # the user read part 1 while the model was still writing
    texts = wecom.texts_to("u1")
    assert texts[0] == paragraphs[0]
    assert all(len(t.encode()) <= 2048 for t in texts)
    assert "".join(texts).replace("\n", "") == "".join(paragraphs)
    assert len(texts) < len(paragraphs)  # a fast stream is merged into fewer parts


def drain(subscription: Any) -> list[str]:
    kinds: list[str] = []
    while subscription._events:
        event: Event = subscription._events.popleft()
        kinds.append(event.kind)
    return kinds


async def test_voice_without_streaming_also_leads_with_what_was_heard(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model, stream_answers=False, sensitive_words=["星期"])
    wecom.add_media("voice-3", (DATA / "voice_hello.amr").read_bytes(), "audio/amr")
    model.set_transcript("今天星期几")
    async with DaemonRunner(settings) as daemon:
        message = media_message("voice", "u1", "voice-3", daemon.signer.corp_id)
        assert await daemon.post(daemon.signer.message(message)) == (200, "")
        await daemon.idle()
    (reply,) = wecom.texts_to("u1")
    assert reply.startswith("🎤 听到的是：「今天🚫几」")  # the heard text is censored too
    assert "不允许的词" in reply  # and the question refused
    assert [r for r in model.requests if r.kind == "chat"] == []


async def test_censoring_never_pushes_a_streamed_part_over_the_limit(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    """🚫 is 4 bytes: replacing a 2-byte word grows the text after the splitter measured it."""
    settings = make_settings(tmp_path, wecom, model, sensitive_words=["sb"])
    model.set_reply("\n".join(["sb.append(x); sb.append(y); sb.append(z);"] * 200))
    model.set_stream(chunk_chars=50)
    async with DaemonRunner(settings) as daemon:
        await daemon.say("u1", "写段 Java")
    texts = wecom.texts_to("u1")
    assert len(texts) > 1 and all(len(t.encode()) <= 2048 for t in texts)
    assert "sb" not in "".join(texts)


async def test_a_word_written_across_two_streamed_pieces_is_censored(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    """The model writes "…机" then "密词…" in one paragraph longer than a part: the forced mid-line cut falls
    right after "机", so censoring each part on its own let the word through in two halves."""
    settings = make_settings(tmp_path, wecom, model, sensitive_words=["机密词"])
    head, tail = "好" * 681, "好" * 300  # 681 × 3 bytes + "机" = 2046 bytes: the cut of a 2048-byte part
    model.set_reply(f"{head}机密词{tail}")
    model.set_stream(chunk_chars=len(head) + 1)  # two pieces: "好…好机" and "密词好…"
    async with DaemonRunner(settings) as daemon:
        await daemon.say("u1", "写一段")
    texts = wecom.texts_to("u1")
    assert len(texts) == 2 and all(len(t.encode()) <= 2048 for t in texts)
    assert "".join(texts) == f"{head}🚫{tail}"
