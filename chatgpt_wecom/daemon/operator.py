"""What an operator does to the running daemon: pause and resume it, try a message in the playground, reset a quota,
clear a context, reload the config, and read its status and quotas.

The control API calls these (and the SIGHUP handler calls `reload`); `Services` only builds and closes things. A
change is stored together with its audit entry, in one transaction, before it takes effect, and then announced on
the event bus.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatgpt_wecom import __version__, protocol
from chatgpt_wecom.config import ConfigError, load_settings
from chatgpt_wecom.daemon.channels.base import Inbound
from chatgpt_wecom.daemon.chat.policy import day_start, month_start
from chatgpt_wecom.daemon.chat.templates import TemplateError
from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.live_settings import LiveSettings, load_templates
from chatgpt_wecom.daemon.store.audit import audit
from chatgpt_wecom.daemon.store.conversations import ConversationStore
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.state import DaemonState
from chatgpt_wecom.daemon.store.usage import split_person

if TYPE_CHECKING:
    from chatgpt_wecom.daemon.services import Services

log = logging.getLogger(__name__)


def vars_of(obj: Any) -> dict[str, Any]:
    """The fields of a slotted dataclass, for a wire model of the same shape."""
    return {name: getattr(obj, name) for name in obj.__slots__}


PAUSED = "paused"  # the daemon_state key: {"notice": the operator's own notice or null, "by": actor}; null: answering


@dataclass(frozen=True, slots=True)
class Reload:
    """What a reload did: the keys applied and those that need a restart; or, with `errors`, nothing (the file's
    problems, one readable line each, as `ConfigError.lines`)."""

    changed: list[str]
    restart_needed: list[str]
    errors: list[str] = field(default_factory=list)


class Pause:
    """Whether the bot is paused, and with which notice — held here and in `daemon_state`, nowhere else.

    While paused everyone but admins gets the notice instead of an answer. An operator's own notice is kept as given;
    without one the configured `pause_notice` in force is shown, so a reload that changes it applies at once. The
    pause survives restarts: `restore()` reads it at start-up.
    """

    def __init__(self, db: Database, state: DaemonState, live: LiveSettings, bus: EventBus) -> None:
        self._db = db
        self._state = state
        self._live = live
        self._bus = bus
        self._paused = False
        self._own_notice: str | None = None  # the operator's, if they gave one

    def notice(self) -> str | None:
        """What non-admins get instead of an answer; None while the bot answers."""
        if not self._paused:
            return None
        return self._own_notice or self._live.settings.pause_notice

    async def restore(self) -> None:
        """Take up a pause stored before the last stop."""
        stored = await self._state.get(PAUSED)
        if stored is not None:
            self._paused, self._own_notice = True, stored.get("notice")
            log.warning("the bot is paused (by an operator before the last stop); `ctl resume` resumes it")

    async def pause(self, notice: str | None, actor: str) -> None:
        """Everyone but admins gets `notice` (or the configured one) instead of an answer, until `resume`."""
        own = notice or None
        shown = own or self._live.settings.pause_notice
        async with self._db.tx() as conn:
            await DaemonState.set(conn, PAUSED, {"notice": own, "by": actor})
            await audit(conn, actor, "pause", "", None, {"notice": shown})
        self._paused, self._own_notice = True, own  # only once it is stored
        log.warning("paused by %s", actor)
        self._bus.publish("bot.paused", actor=actor, notice=shown)

    async def resume(self, actor: str) -> None:
        async with self._db.tx() as conn:
            await DaemonState.set(conn, PAUSED, None)
            await audit(conn, actor, "resume", "", None, None)
        self._paused, self._own_notice = False, None
        log.warning("resumed by %s", actor)
        self._bus.publish("bot.resumed", actor=actor)


class Operator:
    """The operator's actions over the parts of one running daemon (`services`, once it is open)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._live = services.live
        self._pause = services.pause
        self._bus = services.bus
        self._clock = services.tuning.clock

    async def pause(self, notice: str | None, actor: str) -> None:
        await self._pause.pause(notice, actor)

    async def resume(self, actor: str) -> None:
        await self._pause.resume(actor)

    async def playground(self, user: str, text: str, actor: str, channel: str | None = None) -> int:
        """Put `text` into the pipeline as if `user` had sent it on `channel` (default: the first configured);
        the answer goes to that user there. Returns the inbox id."""
        channels = self._services.channels
        name = channel or next(iter(channels))
        if name not in channels:
            raise ValueError(f"no channel {name!r} is configured (configured: {', '.join(channels)})")
        message = Inbound(
            dedupe_key=f"play:{uuid.uuid4().hex}",
            user_id=user,
            msg_type="text",
            content=text,
            payload={"source": "playground", "by": actor},
        )
        inbox_id = await self._services.intake(channels[name], message)
        assert inbox_id is not None  # a fresh uuid is never a duplicate
        return inbox_id

    async def reset_quota(self, user: str | None, actor: str) -> int:
        """Clear today's count of `user` (None: everyone); returns how many counts were cleared."""
        day = self._services.responder.local_day(self._clock())
        cleared = await self._services.usage.reset(user, day, actor)
        self._bus.publish("policy.changed", actor=actor, change="quota_reset", user=user or "all")
        return cleared

    async def clear_context(self, user: str, actor: str) -> None:
        """Forget `user`'s 串聊 context; their next question starts afresh."""
        async with self._services.db.tx() as conn:
            await ConversationStore.clear_context(conn, user)
            await audit(conn, actor, "clear_context", user, None, None)
        self._bus.publish("policy.changed", actor=actor, change="context_cleared", user=user)

    async def reload(self) -> Reload:
        """Re-read the config file and prompts.yml (SIGHUP, `ctl reload`): put in force what can change live.

        Returns the keys applied and the changed keys that need a restart — or, when the file no longer validates,
        its problems (`errors`, the lines `check` prints): then nothing is applied and the daemon keeps running as
        it was.
        """
        config_path = self._services.config_path
        if config_path is None:
            log.info("reload: no config file to re-read (the environment of a running process does not change)")
            return Reload([], [])
        try:
            new = load_settings(config_path, require_file=True)
            templates = load_templates(config_path)
        except (ConfigError, TemplateError) as exc:
            lines = exc.lines if isinstance(exc, ConfigError) else [str(exc)]
            log.error("reload: config not applied, keeping the running one: %s", "; ".join(lines))
            self._bus.publish("error", source="reload", error="; ".join(lines))
            return Reload([], [], lines)
        changed, needs_restart = self._live.replace(new, templates)
        if needs_restart:
            log.warning("reload: %s changed; restart the daemon to apply", ", ".join(needs_restart))
        settings = self._live.settings
        logging.getLogger().setLevel(settings.log_level.upper())
        applied = await self._services.policy.apply_config(settings)
        log.info("reload: applied %s", ", ".join(changed) or "no changed keys")
        if applied:
            log.info("policy: applied from the config file: %s", ", ".join(applied))
        self._bus.publish("config.reloaded", changed=changed, restart_needed=needs_restart)
        return Reload(changed, needs_restart)

    async def status(self) -> protocol.Status:
        services, s, now = self._services, self._live.settings, self._clock()
        last_event = services.bus.last_seq  # before any await: a stream since it misses nothing of this status
        users, questions, messages = await services.history.today(day_start(now, s.zone))
        app = services.channels["wecom"].detail() if "wecom" in services.channels else {}
        notice = self._pause.notice()
        return protocol.Status(
            version=__version__,
            started_at=services.started_at,
            boot=services.bus.boot,
            last_event=last_event,
            uptime=time.time() - services.started_at,
            paused=notice is not None,
            pause_notice=notice or s.pause_notice,
            model=services.model.model,
            model_endpoint=services.model.endpoint,
            wecom_app=protocol.WeComAppStatus.model_validate(app) if app else None,
            channels=self.channel_states(),
            queue_depth=services.dispatcher.depth,
            open_messages=await services.inbox.count_open(),
            users_today=users,
            questions_today=questions,
            messages_today=messages,
            feedback=await services.feedback.counts(),
            secrets=s.secrets_set(),
            last_errors=[protocol.Event(seq=e.seq, kind=e.kind, at=e.at, data=e.data) for e in self._bus.recent_errors],
            blocked=self.blocked(),
            timezone=s.timezone,
            config_path=str(services.config_path) if services.config_path else None,
            data_dir=str(s.data_dir),
            control_socket=str(s.socket_path),
        )

    def blocked(self) -> list[protocol.Blocked]:
        return [protocol.Blocked(**vars_of(b)) for b in self._services.deliverer.blocked()]

    def retry(self, user: str | None, actor: str) -> list[protocol.Blocked]:
        """End the retry wait of `user`'s blocked conversations (None: all) now — after the operator fixed the cause."""
        woken = [protocol.Blocked(**vars_of(b)) for b in self._services.deliverer.retry_now(user)]
        log.info("delivery: %s asked to retry %s now: %d waiting", actor, user or "every conversation", len(woken))
        self._bus.publish("delivery.retry", actor=actor, user=user or "all", woken=len(woken))
        return woken

    def channel_states(self) -> list[protocol.ChannelStatus]:
        return [
            protocol.ChannelStatus(
                name=c.name, namespace=c.namespace, up=c.state.up, since=c.state.since,
                last_error=c.state.last_error, reconnects=c.state.reconnects,
                detail={k: v for k, v in c.detail().items() if k != "token"},
            )
            for c in self._services.channels.values()
        ]  # fmt: skip

    async def users(self) -> protocol.Users:
        """The user directory: every stored person, then list entries that name nobody stored yet."""
        s, now = self._live.settings, self._clock()
        lists = self._services.policy.lists
        people = await self._services.directory.people(day_start(now, s.zone), self._services.responder.local_day(now))
        users = [
            protocol.KnownUser(
                namespace=x.namespace, user_id=x.user_id, name=x.name, channel=x.channel, last_seen=x.last_seen,
                questions_today=x.questions_today, groups=x.groups,
                lists=[n for n in protocol.LIST_NAMES if lists.has(n, x.user_id, x.namespace)],
            )
            for x in people
        ]  # fmt: skip
        known = {u.user_id.casefold() for u in users} | {f"{u.namespace}:{u.user_id}".casefold() for u in users}
        listed: dict[str, protocol.KnownUser] = {}
        for name in protocol.LIST_NAMES:
            for entry in lists.members(name):
                if entry.casefold() in known:
                    continue
                namespace, user_id = split_person(entry)
                user = listed.setdefault(
                    entry.casefold(), protocol.KnownUser(namespace=(namespace or "").lower(), user_id=user_id)
                )
                user.lists.append(name)
        users.sort(key=lambda u: (-(u.last_seen or 0), u.user_id.casefold()))
        users += sorted(listed.values(), key=lambda u: (u.user_id.casefold(), u.namespace))
        return protocol.Users(day=self._services.responder.local_day(now), timezone=s.timezone, users=users)

    async def quotas(self) -> protocol.Quotas:
        s, now = self._live.settings, self._clock()
        day = self._services.responder.local_day(now)
        lists = self._services.policy.lists
        rows = await self._services.history.user_activity(day, month_start(now, s.zone))
        users = [
            protocol.UserQuota(user_id=u, used_today=used, questions_month=q, tokens_month=t,
                               unlimited=lists.unlimited(u) or s.max_request <= 0)
            for u, used, q, t in rows
        ]  # fmt: skip
        return protocol.Quotas(day=day, limit=s.max_request, timezone=s.timezone, users=users)
