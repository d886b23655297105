"""Wire models of the control API, shared by the daemon (server) and its clients (`ctl`, the TUI).

JSON over a Unix socket, routes under `/v1`. Errors are `{"error": "...", "code": "..."}` with a 4xx/5xx status.
The live event stream (`GET /v1/events`) is Server-Sent Events: one `Event` per `data:` line. With `?since=N&boot=B`
it first replays the kept events after N (see `StreamResumed`), so a client that reconnects misses nothing.

This module imports neither the daemon nor textual: both sides depend on it, never on each other.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

API = "/v1"

ListName = Literal["allow", "deny", "vip", "admin"]
LIST_NAMES: tuple[ListName, ...] = ("allow", "deny", "vip", "admin")


class ErrorBody(BaseModel):
    error: str
    code: str  # bad_request, not_found, unknown_list, unknown_channel, invalid_config, internal …


class TokenState(BaseModel):
    has_token: bool
    expires_in: float | None = None
    last_error: str | None = None
    last_error_code: int | None = None


class Event(BaseModel):
    """One thing that happened in the daemon. `dropped`: events this client missed just before this one."""

    seq: int
    kind: str  # message.received, answer.started, answer.finished, reply.stored, delivery.sent,
    # delivery.failed, message.done, policy.changed, config.reloaded, bot.paused, bot.resumed, error
    at: float
    data: dict[str, Any] = Field(default_factory=dict)
    dropped: int = 0


RESUMED = "stream.resumed"  # the first event (seq 0) of a stream opened with `since`; its data is a StreamResumed


class StreamResumed(BaseModel):
    """What a stream opened with `GET /v1/events?since=N&boot=B` replays before it goes on live.

    The daemon keeps the last 2,000 events; `lost` > 0 or `restarted` means the client missed something it cannot
    get from the stream, and should reload what it shows."""

    boot: str  # this daemon run's numbering: pass it back as `boot` with the next `since`
    since: int  # the replay is the kept events numbered after this (0 when `restarted`)
    replayed: int  # how many kept events follow, before the live ones
    lost: int = 0  # events after `since` no longer kept (the backlog moved past them)
    restarted: bool = False  # `boot` named another run: the daemon restarted, its numbering began again at 1


class ChannelStatus(BaseModel):
    """One configured channel: whether it is up, since when, its last error and reconnects, and its own facts."""

    name: str
    namespace: str
    up: bool
    since: float | None = None
    last_error: str | None = None
    reconnects: int = 0
    detail: dict[str, Any] = {}


class Status(BaseModel):
    version: str
    started_at: float
    boot: str = ""  # names this run's event numbering (a restart makes a new one)
    last_event: int = 0  # the newest event's seq: `GET /v1/events?since=<it>&boot=<boot>` goes on from here
    uptime: float
    paused: bool
    pause_notice: str
    model: str
    model_endpoint: str
    wecom_api_base: str  # the WeCom app's (empty without it)
    corp_id: str
    agent_id: int
    token: TokenState
    channels: list[ChannelStatus] = []
    queue_depth: int  # messages queued or in progress in the workers
    open_messages: int  # accepted and not finished (includes the queue)
    users_today: int
    questions_today: int
    messages_today: int
    feedback: dict[str, int] = {}  # answers users rated: {"good": n, "bad": m} (the AI bot's 👍/👎)
    secrets: dict[str, bool]  # which secrets are set — never their values
    last_errors: list[Event]
    config_path: str | None
    data_dir: str
    control_socket: str


class Exchange(BaseModel):
    """One question put to the model and its answer (as stored, uncensored)."""

    id: int
    user_id: str
    mode: str
    question: str
    answer: str | None
    error: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    asked_at: float
    answered_at: float | None
    namespace: str = "wecom"  # whose user id (the WeCom app and AI bot share "wecom")
    chat: str = ""  # where it was asked: the user's id for a private chat, else a group's id
    feedback: str | None = None  # the user's verdict on the answer (the AI bot's 👍/👎): "good" | "bad"
    inbox_id: int | None = None  # the message it answers (what events name as `inbox_id`)


class ExchangePage(BaseModel):
    items: list[Exchange]
    next_before: int | None  # pass as `before` for the next (older) page; None at the end


class UserQuota(BaseModel):
    user_id: str
    used_today: int
    questions_month: int
    tokens_month: int
    unlimited: bool


class Quotas(BaseModel):
    day: str  # local date in the daemon's time zone
    limit: int  # max_request; 0 = no limit
    timezone: str
    users: list[UserQuota]


class KnownUser(BaseModel):
    """One person the daemon knows — from their messages, conversations, questions, quota counts or a list."""

    namespace: str  # whose id ("wecom" for the WeCom app and AI bot); "" for a plain id known only from a list
    user_id: str
    name: str | None = None  # as their channel gives it (DingTalk's senderNick), where known
    channel: str | None = None  # the channel of their latest message
    last_seen: float | None = None  # their latest message or conversation (None: only on a list)
    questions_today: int = 0  # questions asked since the start of the daemon's local day
    groups: int = 0  # group chats they talked to the bot in
    lists: list[ListName] = []  # the access lists that name them (by plain id or `namespace:id`)


class Users(BaseModel):
    """`GET /v1/users`: everyone the daemon knows, most recently seen first (list-only people last, by id)."""

    day: str  # the local date `questions_today` counts
    timezone: str
    users: list[KnownUser]


class Lists(BaseModel):
    allow: list[str]
    deny: list[str]
    vip: list[str]
    admin: list[str]


class Words(BaseModel):
    words: list[str]


class Template(BaseModel):
    title: str
    description: str
    example: str


class AuditEntry(BaseModel):
    id: int
    at: float
    actor: str
    action: str
    target: str
    before: Any = None
    after: Any = None


class UsersChange(BaseModel):
    users: list[str] = Field(min_length=1)


class WordsChange(BaseModel):
    words: list[str] = Field(min_length=1)


class Changed(BaseModel):
    changed: list[str]  # what actually changed (already present / absent items are left out)


class QuotaReset(BaseModel):
    user: str | None = None  # None: everyone


class QuotaResetDone(BaseModel):
    cleared: int


class PauseRequest(BaseModel):
    notice: str | None = None  # replaces the configured pause notice while paused


class PlaygroundMessage(BaseModel):
    """A message put into the pipeline as `user` of `channel` (None: the first configured, as `Status.channels`
    lists them). A channel that is not configured is refused: 400 `unknown_channel`."""

    user: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1)
    channel: str | None = None


class PlaygroundAccepted(BaseModel):
    inbox_id: int


class Reloaded(BaseModel):
    changed: list[str]
    restart_needed: list[str]


class PruneRequest(BaseModel):
    dry_run: bool = False  # only count what would go
    days: int | None = Field(None, ge=1)  # None: the daemon's retention_days


class PruneReport(BaseModel):
    """What a prune removed (`dry_run`: would remove). `days` 0: retention is off and nothing was pruned."""

    days: int
    dry_run: bool
    cutoff: float | None = None  # messages received before this were pruned
    messages: int = 0  # emptied to a tombstone that keeps only the message id (dedupe)
    exchanges: int = 0
    parts: int = 0  # reply parts
    drafts: int = 0
    files: int = 0  # images drawn, pictures sent
    file_bytes: int = 0
    tombstones: int = 0  # tombstones dropped, 30 days past the cutoff
    oldest_kept: float | None = None  # received_at of the oldest and newest messages kept
    newest_kept: float | None = None
