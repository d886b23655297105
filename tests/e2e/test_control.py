"""The control API over its Unix socket: permissions, ownership of the socket, errors, events, operator actions."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
from pathlib import Path

import aiohttp
import pytest

from chatgpt_wecom import protocol as p
from chatgpt_wecom.client import ControlClient, ControlError, DaemonNotRunning
from chatgpt_wecom.daemon.control.site import ControlSocketError
from tests.daemon_runner import DaemonRunner, make_settings, short_socket_path
from tests.fakes.channel import MemoryChannel
from tests.fakes.model import FakeModel
from tests.fakes.waiting import wait_until
from tests.fakes.wecom import FakeWeCom


async def test_socket_is_private(daemon: DaemonRunner) -> None:
    path = daemon.settings.socket_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(path.stat().st_mode)


async def test_status_names_which_secrets_are_set_never_their_values(daemon: DaemonRunner) -> None:
    async with ControlClient(daemon.settings.socket_path) as client:
        status = await client.status()
        raw = await client._request("GET", "/status")
    assert status.secrets["agent_secret"] and status.secrets["api_key"] and not status.secrets["azure_openai_token"]
    assert status.model == daemon.settings.model
    assert status.wecom_app is not None and status.wecom_app.agent_id == daemon.settings.agent_id
    assert not status.paused
    text = str(raw)
    for secret in ("agent_secret", "receive_msg_token", "receive_msg_key", "api_key"):
        value = getattr(daemon.settings, secret).get_secret_value()
        assert value not in text, secret


async def test_errors_are_json_with_a_code(daemon: DaemonRunner) -> None:
    async with ControlClient(daemon.settings.socket_path) as client:
        with pytest.raises(ControlError) as unknown:
            await client.add_users("owners", ["x"])  # type: ignore[arg-type]
        assert unknown.value.status == 404 and "allow, deny, vip, admin" in str(unknown.value)
        with pytest.raises(ControlError) as empty:
            await client._request("POST", "/lists/deny/add", p.WordsChange(words=["x"]))
        assert empty.value.status == 400 and empty.value.code == "bad_request"
        with pytest.raises(ControlError) as paging:
            await client._request("GET", "/conversations", limit="many")
        assert paging.value.status == 400


async def test_a_stale_socket_is_replaced_and_a_live_one_is_not_stolen(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    path = short_socket_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file with nobody listening: what a crash leaves
    settings = make_settings(tmp_path, wecom, model, control_socket=path)
    async with DaemonRunner(settings):
        async with ControlClient(path) as client:
            assert (await client.status()).control_socket == str(path)
        second = make_settings(tmp_path / "second", wecom, model, control_socket=path)
        with pytest.raises(ControlSocketError, match="already running"):
            await DaemonRunner(second).start()
        async with ControlClient(path) as client:  # the first daemon still owns it
            await client.status()
    assert not path.exists()  # removed on a clean stop


async def test_daemon_not_running(tmp_path: Path) -> None:
    async with ControlClient(tmp_path / "nothing.sock") as client:
        with pytest.raises(DaemonNotRunning, match="not running"):
            await client.status()


async def test_events_stream_the_pipeline(daemon: DaemonRunner, wecom: FakeWeCom) -> None:
    async with ControlClient(daemon.settings.socket_path) as client:
        kinds: list[tuple[str, dict[str, object]]] = []

        async def follow() -> None:
            async for event in client.events():
                kinds.append((event.kind, event.data))
                if event.kind == "message.done":
                    return

        follower = asyncio.create_task(follow())
        await wait_until(lambda: subscribers(daemon) > 0, what="the event stream to subscribe")
        await daemon.ask("u1", "你好", 1)
        await asyncio.wait_for(follower, 10)
    names = [k for k, _ in kinds]
    for kind in ("message.received", "answer.started", "answer.finished", "reply.stored", "delivery.sent"):
        assert kind in names
    received = dict(kinds)["message.received"]
    assert received["text"] == "你好" and received["user"] == "u1"
    assert dict(kinds)["reply.stored"]["text"] == "echo: 你好"


def subscribers(daemon: DaemonRunner) -> int:
    assert daemon.services is not None
    return len(daemon.services.bus._subscribers)


async def test_a_stuck_event_client_loses_events_not_the_daemon(daemon: DaemonRunner, wecom: FakeWeCom) -> None:
    """A client that stops reading: the daemon keeps answering; the client is told what it missed."""
    services = daemon.services
    assert services is not None
    conn = aiohttp.UnixConnector(path=str(daemon.settings.socket_path))
    async with aiohttp.ClientSession(connector=conn) as http:
        resp = await http.get(f"http://daemon{p.API}/events")
        await wait_until(lambda: len(services.bus._subscribers) == 1, what="the stuck client to subscribe")
        for n in range(3000):  # far more than the per-client queue holds; nobody reads the stream
            services.bus.publish("test.flood", n=n, padding="x" * 200)
        await daemon.ask("u1", "还活着吗", 1)
        await wecom.wait_for_sent(1, user="u1")
        dropped = 0
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("data:"):
                event = p.Event.model_validate_json(line[5:])
                dropped += event.dropped
                if event.kind == "test.flood" and event.data["n"] == 2999:
                    break
        resp.close()
    assert dropped > 0


async def test_pause_and_resume(daemon: DaemonRunner, wecom: FakeWeCom, model: FakeModel) -> None:
    async with ControlClient(daemon.settings.socket_path) as client:
        status = await client.pause("维护中，十分钟后回来")
        assert status.paused and status.pause_notice == "维护中，十分钟后回来"
        await daemon.ask("u1", "你好", 1)
        await wecom.wait_for_sent(1, user="u1")
        assert wecom.texts_to("u1") == ["维护中，十分钟后回来"]
        assert model.requests == []
        assert not (await client.resume()).paused
        await daemon.ask("u1", "你好", 2)
        await wecom.wait_for_sent(2, user="u1")
        entries = await client.audit()
    assert wecom.texts_to("u1")[1] == "echo: 你好"
    assert [e.action for e in entries] == ["resume", "pause"]
    assert entries[1].after == {"notice": "维护中，十分钟后回来"}
    assert all(e.actor.startswith("control") for e in entries)


async def test_pause_survives_a_restart(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings), ControlClient(settings.socket_path) as client:
        await client.pause(None)
    async with DaemonRunner(settings) as daemon:
        await daemon.ask("u1", "你好", 1)
        await wecom.wait_for_sent(1, user="u1")
    assert wecom.texts_to("u1") == [settings.pause_notice]


async def test_playground_goes_through_the_real_pipeline(daemon: DaemonRunner, wecom: FakeWeCom) -> None:
    async with ControlClient(daemon.settings.socket_path) as client:
        accepted = await client.playground("tester", "试一试")
        await wecom.wait_for_sent(1, user="tester")
        page = await client.conversations(user="tester")
    assert wecom.texts_to("tester") == ["echo: 试一试"]
    assert [x.question for x in page.items] == ["试一试"]
    assert accepted.inbox_id > 0


async def test_playground_acts_on_the_channel_asked_and_refuses_an_unknown_one(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    memory = MemoryChannel()
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings, extra_channels=[memory]) as daemon, ControlClient(settings.socket_path) as client:
        await client.playground("tester", "on memory", channel="memory")
        await client.playground("tester", "on the default")  # the first configured: the WeCom app
        await wecom.wait_for_sent(1, user="tester")
        await daemon.idle()
        with pytest.raises(ControlError) as unknown:
            await client.playground("tester", "nowhere", channel="dingtalk")
        page = await client.conversations(user="tester")
        conn = aiohttp.UnixConnector(path=str(settings.socket_path))
        async with aiohttp.ClientSession(connector=conn) as http:
            body = {"user": "t", "text": "x", "channel": "nope"}
            async with http.post(f"http://daemon{p.API}/playground", json=body) as resp:
                raw = (resp.status, await resp.json())
    assert memory.texts_to("tester") == ["echo: on memory"]
    assert wecom.texts_to("tester") == ["echo: on the default"]
    assert [(x.namespace, x.question) for x in page.items] == [("wecom", "on the default"), ("memory", "on memory")]
    assert (unknown.value.status, unknown.value.code) == (400, "unknown_channel")
    assert str(unknown.value) == "no channel 'dingtalk' is configured (configured: wecom, memory)"
    refused = {"error": "no channel 'nope' is configured (configured: wecom, memory)", "code": "unknown_channel"}
    assert raw == (400, refused)  # the API's error shape, as for any bad input


async def test_policy_edits_and_audit_name_the_operator(daemon: DaemonRunner, wecom: FakeWeCom) -> None:
    async with ControlClient(daemon.settings.socket_path) as client:
        assert (await client.add_users("deny", ["bob", "carol"])).changed == ["bob", "carol"]
        assert (await client.add_users("deny", ["BOB"])).changed == []  # case-insensitive
        assert (await client.lists()).deny == ["bob", "carol"]
        await daemon.ask("bob", "你好", 1)
        await wecom.wait_for_sent(1, user="bob")
        assert wecom.texts_to("bob") == [daemon.settings.deny_reply]
        assert (await client.remove_users("deny", ["bob"])).changed == ["bob"]
        assert (await client.add_words(["机密"])).changed == ["机密"]
        assert (await client.words()).words == ["机密"]
        await client.clear_context("bob")
        entries = await client.audit()
    user = os.environ.get("USER") or "root"
    assert entries[0].action == "clear_context" and entries[0].target == "bob"
    assert {e.actor for e in entries} <= {f"control:{user}", "control:root", "control"}
    assert [e.action for e in reversed(entries)] == ["add_deny", "remove_deny", "add_words", "clear_context"]


async def test_history_and_quotas(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, max_request=5)
    async with DaemonRunner(settings) as daemon, ControlClient(settings.socket_path) as client:
        await daemon.ask("u1", "第一问", 1)
        await daemon.ask("u1", "第二问", 2)
        await wecom.wait_for_sent(2, user="u1")
        history = await client.history("u1")
        markdown = await client.history_markdown("u1")
        quotas = await client.quotas()
        assert (await client.reset_quota("u1")).cleared == 2
        after = await client.quotas()
    assert [x.question for x in history] == ["第一问", "第二问"]
    assert "第二问" in markdown and "echo: 第一问" in markdown
    assert quotas.limit == 5 and quotas.users[0].user_id == "u1" and quotas.users[0].used_today == 2
    assert after.users[0].used_today == 0


async def test_reload_through_the_api(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    from tests.daemon_runner import write_config

    settings = make_settings(tmp_path, wecom, model)
    config = write_config(settings, tmp_path / "config.yml")
    async with DaemonRunner(settings, config_path=config), ControlClient(settings.socket_path) as client:
        write_config(settings.model_copy(update={"help": "新的帮助", "port": 1}), config)
        reloaded = await client.reload()
        assert reloaded.changed == ["help"] and reloaded.restart_needed == ["port"]
        config.write_text("corp_id: [broken\n", encoding="utf-8")
        with pytest.raises(ControlError) as bad:
            await client.reload()
    assert bad.value.status == 409 and bad.value.code == "invalid_config"


async def test_a_reload_reaches_every_reader_of_the_settings(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    """One live object: what a reload puts in force is what the responder (templates), the worker (parts, link
    lifetime), the pause notice and status read next — none keeps a copy of its own."""
    from tests.daemon_runner import write_config

    settings = make_settings(tmp_path, wecom, model, service_url="https://bot.example.com")
    config = write_config(settings, tmp_path / "config.yml")
    model.set_reply("\n\n".join(f"第{n}段。" + "很长的回答。" * 100 for n in range(1, 6)))  # ~1.8 KB a paragraph
    async with DaemonRunner(settings, config_path=config) as daemon, ControlClient(settings.socket_path) as client:
        await client.pause(None)  # no notice of its own: the configured one, whichever is in force
        update = {"pause_notice": "升级中，稍后回来", "max_answer_parts": 2, "history_link_hours": 2.0}
        write_config(settings.model_copy(update=update), config)
        (tmp_path / "prompts.yml").write_text("- title: 新模板\n  system: 你是新来的。\n", encoding="utf-8")
        reloaded = await client.reload()
        assert reloaded.changed == ["history_link_hours", "max_answer_parts", "pause_notice"]
        status = await client.status()
        assert status.paused and status.pause_notice == "升级中，稍后回来"
        assert "#新模板" in [t.title for t in await client.templates()]
        await daemon.say("u1", "在吗")
        await client.resume()
        await daemon.say("u2", "写很长")
    assert wecom.texts_to("u1") == ["升级中，稍后回来"]
    shown = "\n\n".join(wecom.texts_to("u2"))
    assert "第1段" in shown and "第2段" not in shown  # one part of the answer, then the note
    assert "回答太长" in shown and "2 小时内有效" in shown


async def test_non_ascii_words_are_removed_whatever_their_case(daemon: DaemonRunner) -> None:
    """SQLite's NOCASE folds ASCII only; removal must still find the stored spelling."""
    async with ControlClient(daemon.settings.socket_path) as client:
        await client.add_words(["Ärger", "ΣΟΦΙΑ"])
        assert (await client.remove_words(["ärger", "σοφια"])).changed == ["ärger", "σοφια"]
        assert (await client.words()).words == []


async def test_admin_commands_typed_in_the_playground_name_the_operator(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model, admin_users=["boss"])
    async with DaemonRunner(settings) as daemon, ControlClient(settings.socket_path) as client:
        await client.playground("boss", "#拉黑 bob")
        await daemon.idle()
        (entry,) = [e for e in await client.audit() if e.action == "add_deny"]
    assert entry.target == "bob"
    assert entry.actor.startswith("control") and entry.actor.endswith("(playground as boss)")


async def test_status_masks_a_password_in_wecom_api_base(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    base = wecom.base_url.replace("http://", "http://ops:Hunter2pass@")
    settings = make_settings(tmp_path, wecom, model, wecom_api_base=base)
    async with DaemonRunner(settings), ControlClient(settings.socket_path) as client:
        status = await client.status()
    assert "Hunter2pass" not in status.model_dump_json()
    assert status.wecom_app is not None and status.wecom_app.api_base.startswith("http://***@127.0.0.1:")


async def _first_event(client: ControlClient, opened: asyncio.Event) -> p.Event:
    async for event in client.events(on_open=opened.set):
        return event
    raise AssertionError("the stream ended")


async def test_live_event_clients_are_capped_and_the_refused_one_is_told_why(daemon: DaemonRunner) -> None:
    services = daemon.services
    assert services is not None
    cap = services.bus.max_subscribers
    assert 8 <= cap <= 64  # a sensible default: a few TUIs and `ctl events`, not unbounded memory
    sock = daemon.settings.socket_path
    conn = aiohttp.UnixConnector(path=str(sock), limit=0)
    async with aiohttp.ClientSession(connector=conn) as http, ControlClient(sock) as client:
        held = [await http.get(f"http://daemon{p.API}/events") for _ in range(cap)]  # none of them reads
        assert [r.status for r in held] == [200] * cap
        await wait_until(lambda: subscribers(daemon) == cap, what="every client to subscribe")

        with pytest.raises(ControlError) as refused:
            await asyncio.wait_for(anext(client.events()), 10)
        assert (refused.value.status, refused.value.code) == (503, "too_many_clients")
        assert str(refused.value) == (
            f"too many live-event clients: the daemon serves at most {cap} at once (TUIs and `ctl events`); "
            "close one and try again"
        )
        assert subscribers(daemon) == cap and not (await client.status()).paused  # the rest of the API answers

        held.pop().close()
        await wait_until(lambda: subscribers(daemon) == cap - 1, what="the closed client's slot to free")
        opened = asyncio.Event()
        first = asyncio.create_task(_first_event(client, opened))
        await asyncio.wait_for(opened.wait(), 10)  # accepted this time
        await client.resume()
        assert (await asyncio.wait_for(first, 10)).kind == "bot.resumed"
        for resp in held:
            resp.close()
    await wait_until(lambda: subscribers(daemon) == 0, what="every slot to free")


async def test_reply_stored_carries_what_the_user_got_censored(daemon: DaemonRunner, model: FakeModel) -> None:
    """The event shows the censored text the user received, and says it was censored (the exchange keeps the
    model's own answer); `delivery.sent` carries the message as sent."""
    model.set_reply("这是秘密计划")
    async with ControlClient(daemon.settings.socket_path) as client:
        await client.add_words(["秘密"])
        seen: dict[str, dict[str, object]] = {}

        async def follow() -> None:
            async for event in client.events():
                seen.setdefault(event.kind, event.data)
                if event.kind == "message.done":
                    return

        follower = asyncio.create_task(follow())
        await wait_until(lambda: subscribers(daemon) > 0, what="the event stream to subscribe")
        await daemon.ask("u1", "计划?", 1)
        await asyncio.wait_for(follower, 10)
        [exchange] = await client.history("u1")
    assert seen["reply.stored"]["text"] == "这是🚫计划" and seen["reply.stored"]["censored"] is True
    assert seen["delivery.sent"]["text"] == "这是🚫计划"
    assert exchange.answer == "这是秘密计划"


async def test_logs_keep_recent_lines_without_secrets(daemon: DaemonRunner) -> None:
    secret = daemon.settings.api_key.get_secret_value()
    logging.getLogger("chatgpt_wecom.test").warning("a line with the key %s in it", secret)
    async with ControlClient(daemon.settings.socket_path) as client:
        first = await client.logs()
        mine = [line for line in first.lines if line.logger == "chatgpt_wecom.test"]
        assert [line.message for line in mine] == ["a line with the key *** in it"] and mine[0].level == "WARNING"
        logging.getLogger("chatgpt_wecom.test").error("and one more")
        later = await client.logs(since=first.last_seq)
    assert [line.message for line in later.lines] == ["and one more"] and later.last_seq == first.last_seq + 1
