"""Wire models of the control API, shared by the daemon (server) and its clients (`ctl`, the TUI).

JSON over a Unix socket, routes under `/v1`. Errors are `{"error": "...", "code": "..."}` with a 4xx/5xx status.
The live event stream (`GET /v1/events`) is Server-Sent Events: one `Event` per `data:` line. With `?since=N&boot=B`
it first replays the kept events after N (see `StreamResumed`), so a client that reconnects misses nothing.

This module imports neither the daemon nor textual: both sides depend on it, never on each other.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

API = "/v1"

_FIELDS = {"user": "the user id", "users": "user id", "text": "the text", "words": "word", "notice": "the notice",
           "days": "days", "channel": "the channel", "dry_run": "dry_run", "confirm": "confirm"}  # fmt: skip


def _what(loc: tuple[int | str, ...]) -> str:
    names = [str(x) for x in loc if not isinstance(x, int)]
    numbers = [x for x in loc if isinstance(x, int)]
    name = _FIELDS.get(names[-1], names[-1]) if names else "the request"
    return f"{name} {numbers[-1] + 1}" if numbers else name


def validation_sentences(exc: ValidationError) -> list[str]:
    """A request that does not fit its model, as sentences an operator can act on — one per problem, never
    pydantic's own report (the API's 400 `bad_request`, and the client's refusal of the same before sending)."""
    sentences = []
    for err in exc.errors():
        what, kind, ctx = _what(tuple(err.get("loc", ()))), err.get("type", ""), err.get("ctx") or {}
        value = err.get("input")
        if kind == "missing":
            text = f"{what} is required"
        elif kind == "string_too_long" and isinstance(value, str):
            text = f"{what} has {len(value)} characters; at most {ctx.get('max_length')} are allowed"
        elif kind == "too_short":
            text = f"give at least one {what.removeprefix('the ')}"
        elif kind == "string_too_short":
            text = f"{what} must not be empty"
        elif kind.startswith("json") or kind == "model_type":
            text = "the request is not the JSON object this API takes"
        elif kind.endswith("_type") or kind.endswith("_parsing"):
            text = f"{what} must be {kind.split('_')[0].replace('string', 'text').replace('int', 'a whole number')}"
        else:
            text = f"{what}: {str(err.get('msg', 'is not valid')).removeprefix('Value error, ')}"
        sentences.append(text[:1].upper() + text[1:])
    return sentences or ["the request is not valid"]


ListName = Literal["allow", "deny", "vip", "admin"]
LIST_NAMES: tuple[ListName, ...] = ("allow", "deny", "vip", "admin")


class ErrorBody(BaseModel):
    """A refusal. `error` is one sentence; `lines`, when there are several problems, one sentence each (a config
    file's errors on reload, the bad ids of a list change)."""

    error: str
    code: str  # bad_request, bad_user_id, confirm_needed, unknown_list, unknown_channel, invalid_config, internal …
    lines: list[str] = []


class TokenState(BaseModel):
    has_token: bool
    expires_in: float | None = None
    last_error: str | None = None
    last_error_code: int | None = None


class Event(BaseModel):
    """One thing that happened in the daemon. `dropped`: events this client missed just before this one."""

    seq: int
    kind: str  # message.received, answer.started, answer.finished, reply.stored (`text`: what the user got,
    # `censored`: true when words were masked in it), delivery.sent (`text`: that message),
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


class Blocked(BaseModel):
    """A conversation whose next answer part cannot be delivered now: why, since when, and when it is tried again
    by itself (`POST /v1/retry` tries at once)."""

    channel: str
    user: str
    chat: str  # the user's id for a private chat, else a group's id
    inbox_id: int  # the message whose answer waits (later messages of the conversation queue behind it)
    reason: str  # the last failure, e.g. "WeCom message/send: errcode 60020: not allow to access from your ip"
    hint: str | None = None  # the operator's fix, for a configuration error
    since: float
    tries: int
    next_try_at: float


class WeComAppStatus(BaseModel):
    """The WeCom self-built app's own facts (its connection state is its ChannelStatus, like every channel's)."""

    api_base: str
    corp_id: str
    agent_id: int
    token: TokenState


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
    wecom_app: WeComAppStatus | None = None  # None: no WeCom app here (only the AI bot or DingTalk, say)
    channels: list[ChannelStatus] = []
    queue_depth: int  # messages queued or in progress in the workers
    open_messages: int  # accepted and not finished (includes the queue)
    users_today: int
    questions_today: int
    messages_today: int
    feedback: dict[str, int] = {}  # answers users rated: {"good": n, "bad": m} (the AI bot's 👍/👎)
    secrets: dict[str, bool]  # which secrets are set — never their values
    last_errors: list[Event]
    blocked: list[Blocked] = []  # conversations waiting to retry a delivery, the longest blocked first
    timezone: str = ""  # the configured zone: the one every time is shown in
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
    timezone: str = ""  # the configured zone, to show the times in
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
    """Ids to add or remove. Adding the first entry of an empty allow list shuts out everyone else: without
    `confirm` that is refused with 409 `confirm_needed`, whose `error` is the warning to show."""

    users: list[str] = Field(min_length=1)
    confirm: bool = False


class RetryRequest(BaseModel):
    user: str | None = None  # None: every blocked conversation


class RetryDone(BaseModel):
    woken: list[Blocked]  # the conversations whose wait was ended (their parts are being tried now)


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


class LogLine(BaseModel):
    """One line of the daemon's log (secrets masked). `seq` numbers the lines: ask for those after the last seen."""

    seq: int
    at: float
    level: str  # DEBUG, INFO, WARNING, ERROR, CRITICAL
    logger: str
    message: str  # may run over several lines (a traceback)


class LogLines(BaseModel):
    """`GET /v1/logs?since=SEQ&limit=N`: the lines after `since` still kept (the daemon keeps the last ~2,000)."""

    lines: list[LogLine]
    last_seq: int  # the newest line's number (pass as `since` next time)


class PruneRequest(BaseModel):
    dry_run: bool = False  # only count what would go
    days: int | None = Field(None, ge=1)  # None: the daemon's retention_days


class PruneReport(BaseModel):
    """What a prune removed (`dry_run`: would remove). `days` 0: retention is off and nothing was pruned."""

    days: int
    dry_run: bool
    timezone: str = ""  # the configured zone, to show the times in
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
