"""`chatgpt-wecom ctl`: steer a running daemon through its control socket, one ControlClient call per command.

Human output is compact aligned text, its times in the daemon's configured `timezone` (named in the output, as in
exports and `history`); `--json` prints the API's JSON and nothing else on stdout.
Everything printed passes through `visible`: what users wrote cannot drive the operator's terminal.
A daemon that is not running, a refused request or an unreadable config file is one line on stderr, never a
traceback: exit 1 for the first two, 2 for the config file (and for usage errors).
"""

from __future__ import annotations

import asyncio
import enum
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
import typer
from pydantic import BaseModel, TypeAdapter

from chatgpt_wecom import protocol as p
from chatgpt_wecom.channel_text import channel_facts, exchange_where
from chatgpt_wecom.client import ControlClient, ControlError, DaemonNotRunning, resumed
from chatgpt_wecom.config import ConfigError, resolve_socket
from chatgpt_wecom.visible import visible, visible_json

T = TypeVar("T")
PREVIEW = 60  # characters of a question or answer in `conversations`

ctl_app = typer.Typer(
    help="Steer a running daemon through its control socket (found from --config or --socket).",
    no_args_is_help=True,
)
users_app = typer.Typer(
    help="List everyone the daemon knows; show and change the access lists: allow, deny, vip, admin.",
    no_args_is_help=True,
)
words_app = typer.Typer(help="Show and change the sensitive words.", no_args_is_help=True)
quota_app = typer.Typer(help="Show today's usage per user, or reset it.", no_args_is_help=True)
ctl_app.add_typer(users_app, name="users")
ctl_app.add_typer(words_app, name="words")
ctl_app.add_typer(quota_app, name="quota")


@dataclass(frozen=True)
class Common:
    """The options every ctl command shares (given before the command: `ctl --json status`)."""

    config: Path | None
    socket: Path | None
    json: bool


@ctl_app.callback()
def _common(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="config.yml of the daemon; its data_dir/control_socket locate the socket (default: ./config.yml).",
            envvar="CHATGPT_WECOM_CONFIG",
            dir_okay=False,
        ),
    ] = None,
    socket: Annotated[
        Path | None,
        typer.Option(help="Path of the control socket; overrides --config.", envvar="CHATGPT_WECOM_SOCKET"),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the API's JSON (one object per line for `events`) for scripts.")
    ] = False,
) -> None:
    """Steer a running daemon through its control socket."""
    ctx.obj = Common(config, socket, json_out)


# --- plumbing ------------------------------------------------------------------------------------------
def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"chatgpt-wecom: {visible(message)}", err=True)
    raise typer.Exit(code)


def _fail_lines(head: str, lines: list[str], code: int = 1) -> NoReturn:
    """A refusal with several problems: its sentence, then one problem a line."""
    typer.echo(f"chatgpt-wecom: {visible(head)}", err=True)
    for line in lines:
        typer.echo(f"  {visible(line)}", err=True)
    raise typer.Exit(code)


def _line(text: str) -> None:
    """One line of human output (a newline in it is shown as `\\n`, never taken as a line break)."""
    typer.echo(visible(text))


def _json_out(text: str) -> None:
    typer.echo(visible_json(text))


def _opts(ctx: typer.Context) -> Common:
    obj = ctx.find_object(Common)
    assert obj is not None  # set by the ctl callback
    return obj


def _call(ctx: typer.Context, call: Callable[[ControlClient], Awaitable[T]]) -> T:
    """Resolve the socket, run one client call, and turn the expected failures into one line on stderr."""
    opts = _opts(ctx)
    try:
        path = resolve_socket(opts.config, opts.socket)
    except ConfigError as exc:
        _fail("; ".join(exc.lines), 2)

    async def run() -> T:
        async with ControlClient(path) as client:
            return await call(client)

    try:
        return asyncio.run(run())
    except ControlError as exc:
        if len(exc.lines) > 1 or (exc.lines and exc.code == "invalid_config"):
            joined = "; ".join(exc.lines)
            head = str(exc).removesuffix(joined).removesuffix(": ") if str(exc) != joined else "refused"
            _fail_lines(head + ":", exc.lines)
        _fail(str(exc))
    except DaemonNotRunning as exc:
        _fail(str(exc))
    except TimeoutError:
        _fail(f"the daemon did not answer in time on {path}")
    except aiohttp.ClientError as exc:
        _fail(f"the daemon on {path} broke off the request ({exc or type(exc).__name__})")
    except ValueError:  # pydantic's ValidationError and bad JSON: not the API this ctl speaks
        _fail(f"the answer on {path} was not understood (a daemon of another version? restart it after upgrading)")


def _print(ctx: typer.Context, data: BaseModel | list[Any], human: Callable[[], list[str]]) -> None:
    """The JSON of `data` with --json, else the `human` lines."""
    if _opts(ctx).json:
        if isinstance(data, BaseModel):
            _json_out(data.model_dump_json())
        else:
            _json_out(TypeAdapter(list[Any]).dump_json(data).decode())
        return
    for line in human():
        _line(line)


def _zone(name: str) -> tzinfo | None:
    """The daemon's configured zone (None: this machine's, for a daemon too old to say)."""
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _time(at: float, zone: str, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """`at` in the daemon's `timezone` — the one rule for every time ctl shows (exports and history keep it too)."""
    return datetime.fromtimestamp(at, _zone(zone)).strftime(fmt)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes:02d}m" if days else f"{hours}h {minutes:02d}m {secs:02d}s"


def _table(rows: list[tuple[str, str]]) -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    return [f"{k:<{width}}  {v}" for k, v in rows]


def _oneline(text: str | None, limit: int = PREVIEW) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- status --------------------------------------------------------------------------------------------
def _wecom_app_lines(app: p.WeComAppStatus | None) -> list[tuple[str, str]]:
    """The WeCom app's rows, where it is configured (a deployment may have only the AI bot, or only DingTalk)."""
    if app is None:
        return []
    token = app.token
    token_text = f"valid, expires in {int(token.expires_in or 0)}s" if token.has_token else "none"
    if token.last_error:
        token_text += f" (last error{f' {token.last_error_code}' if token.last_error_code else ''}: {token.last_error})"
    return [("wecom", f"{app.api_base}, corp {app.corp_id}, agent {app.agent_id}"), ("token", token_text)]


def _status_lines(s: p.Status) -> list[str]:
    tz = s.timezone
    rows = [
        ("version", f"{s.version}, up {_duration(s.uptime)} (since {_time(s.started_at, tz)})"),
        ("timezone", f"{tz or 'this machine'} (every time shown is in it)"),
        ("state", f"PAUSED — users get: {s.pause_notice}" if s.paused else "answering"),
        ("model", f"{s.model} at {s.model_endpoint}"),
        *_wecom_app_lines(s.wecom_app),
        ("pipeline", f"{s.queue_depth} queued or in progress, {s.open_messages} not finished"),
        ("today", f"{s.users_today} users, {s.questions_today} questions, {s.messages_today} messages"),
        *([("feedback", _feedback(s.feedback))] if any(s.feedback.values()) else []),
        ("secrets", ", ".join(f"{k} {'set' if v else 'unset'}" for k, v in sorted(s.secrets.items()))),
        ("config", s.config_path or "(none: environment only)"),
        ("data dir", s.data_dir),
        ("socket", s.control_socket),
    ]
    lines = _table(rows) + _channel_lines(s.channels, tz) + _blocked_lines(s.blocked, tz)
    if s.last_errors:
        lines += ["", "recent errors:"] + [f"  {_event_line(e, tz)}" for e in s.last_errors]
    return lines


def _feedback(counts: dict[str, int]) -> str:
    """Users' verdicts on answers: `3 good, 1 bad`."""
    return f"{counts.get('good', 0)} good, {counts.get('bad', 0)} bad"


def _blocked_lines(blocked: list[p.Blocked], tz: str) -> list[str]:
    """Each conversation whose answer cannot be delivered now: who, since when, why, the fix, the next try."""
    if not blocked:
        return []
    lines = ["", "blocked (answers wait to be delivered; `ctl retry [USER]` tries again now):"]
    for b in blocked:
        where = "" if b.chat.casefold() == b.user.casefold() else f" in {b.chat}"
        lines.append(
            f"  {b.user}{where} ({b.channel}) since {_time(b.since, tz)}, {b.tries} failed tries, "
            f"next at {_time(b.next_try_at, tz, '%H:%M:%S')}: {b.reason}"
        )
        if b.hint:
            lines.append(f"    fix: {b.hint}")
    return lines


def _channel_lines(channels: list[p.ChannelStatus], tz: str) -> list[str]:
    """Each configured channel: its state on one line, its own facts under it."""
    if not channels:
        return []
    width = max(len(c.name) for c in channels)
    lines = ["", "channels:"]
    for c in channels:
        if c.up:
            state = f"up since {_time(c.since, tz)}" if c.since is not None else "up"
        else:
            state = "DOWN" + (f" (last up {_time(c.since, tz)})" if c.since is not None else "")
        state += f" · {c.reconnects} reconnects"
        if c.last_error:
            state += f" · last error: {c.last_error}"
        lines.append(f"  {c.name:<{width}}  {state}")
        if facts := channel_facts(c):
            lines.append(f"  {'':<{width}}  {facts}")
    return lines


@ctl_app.command()
def status(ctx: typer.Context) -> None:
    """Show the daemon's state: model, each channel, WeCom token, queue, today's numbers, which secrets are set."""
    result = _call(ctx, lambda c: c.status())
    _print(ctx, result, lambda: _status_lines(result))


# --- users and words -----------------------------------------------------------------------------------
def _change_lines(changed: list[str], asked: list[str], did: str, did_not: str) -> list[str]:
    """What a change did, in the order asked: `did: a, b` and `did_not: c` (already there, or absent)."""
    done = {x.casefold() for x in changed}
    first: dict[str, str] = {}
    for item in (a.strip() for a in asked):
        first.setdefault(item.casefold(), item)
    unique = [a for a in first.values() if a]
    hit, miss = [a for a in unique if a.casefold() in done], [a for a in unique if a.casefold() not in done]
    return ([f"{did}: {', '.join(hit)}"] if hit else []) + ([f"{did_not}: {', '.join(miss)}"] if miss else [])


IdsArg = Annotated[
    list[str],
    typer.Argument(metavar="ID", help="User ids (case-insensitive): WeCom UserIDs, DingTalk staff ids, namespace:id."),
]


def _list_commands(name: p.ListName) -> typer.Typer:
    sub = typer.Typer(help=f"The {name} list: list, add or remove user IDs.", no_args_is_help=True)

    @sub.command("list")
    def list_(ctx: typer.Context) -> None:
        """Print the user IDs on the list, one per line (--json: a JSON array)."""
        members: list[str] = getattr(_call(ctx, lambda c: c.lists()), name)
        _print(ctx, members, lambda: members or ["(none)"])

    @sub.command()
    def add(
        ctx: typer.Context,
        ids: IdsArg,
        yes: Annotated[
            bool, typer.Option("--yes", "-y", help="Add to an empty allow list without asking (it shuts out the rest).")
        ] = False,
    ) -> None:
        """Add users; says which were added and which were already on the list. Ids are checked first (letters,
        digits, _ - . @, at most 64; `namespace:id` for one person of one platform); a bad one adds nothing.
        The first entry of an empty allow list shuts out everyone else: it is asked about, or needs --yes."""

        async def add_them(client: ControlClient) -> p.Changed:
            try:
                return await client.add_users(name, ids, confirm=yes)
            except ControlError as exc:
                if exc.code != "confirm_needed" or _opts(ctx).json or not sys.stdin.isatty():
                    if exc.code == "confirm_needed":
                        raise ControlError(exc.status, exc.code, f"{exc} (add --yes)") from None
                    raise
                if not typer.confirm(f"{visible(str(exc)).removesuffix(' Confirm to add anyway.')} Add anyway?"):
                    raise typer.Exit(1) from None
                return await client.add_users(name, ids, confirm=True)

        result = _call(ctx, add_them)
        _print(ctx, result, lambda: _change_lines(result.changed, ids, f"added to {name}", f"already on {name}"))

    @sub.command()
    def remove(ctx: typer.Context, ids: IdsArg) -> None:
        """Remove users; says which were removed and which were not on the list."""
        result = _call(ctx, lambda c: c.remove_users(name, ids))
        _print(ctx, result, lambda: _change_lines(result.changed, ids, f"removed from {name}", f"not on {name}"))

    return sub


for _name in p.LIST_NAMES:
    users_app.add_typer(_list_commands(_name), name=_name)


def who(namespace: str, user_id: str) -> str:
    """A person as the lists and quota commands name them: `namespace:id`, or a plain id for WeCom's (and for a
    plain list entry)."""
    return user_id if namespace in ("", "wecom") else f"{namespace}:{user_id}"


def _directory_lines(d: p.Users, match: str | None) -> list[str]:
    needle = (match or "").casefold()
    users = [
        u for u in d.users if needle in who(u.namespace, u.user_id).casefold() or needle in (u.name or "").casefold()
    ]
    if not users:
        return ["no users" + (f" matching {match!r}" if match else "")]
    rows = [
        (
            who(u.namespace, u.user_id), u.name or "", _time(u.last_seen, "%Y-%m-%d %H:%M") if u.last_seen else "-",
            str(u.questions_today), ",".join(u.lists),
        )
        for u in users
    ]  # fmt: skip
    head = ("user", "name", "last seen", "today", "lists")
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = [f"{len(users)} users (today: {d.day}, {d.timezone})"]
    for user, name, seen, today, lists in [head, *rows]:
        lines.append(f"{user:<{w[0]}}  {name:<{w[1]}}  {seen:<{w[2]}}  {today:>{w[3]}}  {lists}".rstrip())
    return lines


@users_app.command("list")
def users_list(
    ctx: typer.Context,
    match: Annotated[
        str | None, typer.Argument(metavar="TEXT", help="Only users whose id or name contains it.")
    ] = None,
) -> None:
    """Everyone the daemon knows (their messages, conversations, quota counts, the lists), last seen first:
    id (`namespace:id` outside WeCom), name where the channel gives one, last seen, questions today, lists."""
    result = _call(ctx, lambda c: c.users())
    _print(ctx, result, lambda: _directory_lines(result, match))


WordsArg = Annotated[list[str], typer.Argument(metavar="WORD", help="Words or phrases (case-insensitive).")]


@words_app.command("list")
def words_list(ctx: typer.Context) -> None:
    """Print the sensitive words, one per line."""
    result = _call(ctx, lambda c: c.words())
    _print(ctx, result, lambda: result.words or ["(none)"])


@words_app.command("add")
def words_add(ctx: typer.Context, words: WordsArg) -> None:
    """Add sensitive words; says which were added and which were already there."""
    result = _call(ctx, lambda c: c.add_words(words))
    _print(ctx, result, lambda: _change_lines(result.changed, words, "added", "already there"))


@words_app.command("remove")
def words_remove(ctx: typer.Context, words: WordsArg) -> None:
    """Remove sensitive words; says which were removed and which were not there."""
    result = _call(ctx, lambda c: c.remove_words(words))
    _print(ctx, result, lambda: _change_lines(result.changed, words, "removed", "not there"))


# --- quota ---------------------------------------------------------------------------------------------
def _quota_lines(q: p.Quotas) -> list[str]:
    limit = str(q.limit) if q.limit else "no limit"
    lines = [f"day {q.day} ({q.timezone}), daily limit: {limit}"]
    if not q.users:
        return [*lines, "no usage yet"]
    width = max(len("user"), *(len(u.user_id) for u in q.users))
    lines.append(f"{'user':<{width}}  {'today':>9}  {'questions/month':>15}  {'tokens/month':>12}")
    for u in q.users:
        today = f"{u.used_today}{'' if u.unlimited or not q.limit else f'/{q.limit}'}"
        today += " ∞" if u.unlimited and q.limit else ""
        lines.append(f"{u.user_id:<{width}}  {today:>9}  {u.questions_month:>15}  {u.tokens_month:>12}")
    return lines


@quota_app.command("show")
def quota_show(ctx: typer.Context) -> None:
    """Today's questions per user (∞: vip/admin, not limited) and this month's questions and tokens."""
    result = _call(ctx, lambda c: c.quotas())
    _print(ctx, result, lambda: _quota_lines(result))


@quota_app.command("reset")
def quota_reset(
    ctx: typer.Context,
    user: Annotated[
        str | None, typer.Argument(metavar="USER", help="The user whose count for today is cleared.")
    ] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Clear today's count of every user.")] = False,
) -> None:
    """Clear today's question count of USER, or of everyone with --all (exactly one of the two)."""
    if (user is None) == (not everyone):
        ctx.fail("quota reset: give either a USER or --all")
    result = _call(ctx, lambda c: c.reset_quota(None if everyone else user))
    _print(ctx, result, lambda: [f"cleared {result.cleared} count(s) for {user or 'everyone'}"])


# --- conversations and history -------------------------------------------------------------------------
def _exchange_lines(x: p.Exchange, tz: str) -> list[str]:
    tokens = f"{x.prompt_tokens}+{x.completion_tokens} tokens"
    answer = f"A: {_oneline(x.answer)}" if x.answer is not None else f"!  {_oneline(x.error)}"
    where = exchange_where(x.namespace, x.chat, x.user_id)
    return [
        f"#{x.id}  {_time(x.asked_at, tz)}  {x.user_id}  {f'{where}  ' if where else ''}{x.mode}  {tokens}",
        f"  Q: {_oneline(x.question)}",
        f"  {answer}",
    ]


@ctl_app.command()
def conversations(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="Only this user's exchanges.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many exchanges to show.")] = 20,
) -> None:
    """Recent questions and answers, newest first, with time, where (a group, another namespace) and tokens."""
    page = _call(ctx, lambda c: c.conversations(user=user, limit=limit))
    lines = [line for x in page.items for line in _exchange_lines(x, page.timezone)]
    head = f"times in {page.timezone or 'this machine’s zone'}"
    _print(ctx, page, lambda: [head, *lines] if lines else ["no conversations"])


class HistoryFormat(enum.StrEnum):
    """Output formats of `history`."""

    md = "md"
    json = "json"


@ctl_app.command()
def history(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's WeCom UserID.")],
    fmt: Annotated[
        HistoryFormat | None,
        typer.Option("--format", help="md: readable Markdown; json: the exchanges (default: md, json with --json)."),
    ] = None,
) -> None:
    """A user's whole conversation history, oldest first."""
    if (fmt or (HistoryFormat.json if _opts(ctx).json else HistoryFormat.md)) is HistoryFormat.md:
        typer.echo(visible(_call(ctx, lambda c: c.history_markdown(user)), multiline=True))
    else:
        _json_out(TypeAdapter(list[p.Exchange]).dump_json(_call(ctx, lambda c: c.history(user))).decode())


# --- pause, resume, reload -----------------------------------------------------------------------------
@ctl_app.command()
def pause(
    ctx: typer.Context,
    notice: Annotated[str | None, typer.Option(help="Reply users get while paused (default: pause_notice).")] = None,
) -> None:
    """Stop answering: everyone but admins gets the pause notice, until `resume` (survives restarts)."""
    result = _call(ctx, lambda c: c.pause(notice))
    _print(ctx, result, lambda: [f"paused; users now get: {result.pause_notice}"])


@ctl_app.command()
def resume(ctx: typer.Context) -> None:
    """Answer again after `pause`."""
    result = _call(ctx, lambda c: c.resume())
    _print(ctx, result, lambda: ["resumed; answering again"])


@ctl_app.command()
def reload(ctx: typer.Context) -> None:
    """Re-read the config file (like SIGHUP): print the keys applied and those that need a restart. A file that
    does not validate is not applied: its problems are printed, one a line, and the exit code is 1."""
    result = _call(ctx, lambda c: c.reload())
    applied = f"applied: {', '.join(result.changed) or 'nothing changed'}"
    restart = [f"restart needed for: {', '.join(result.restart_needed)}"] if result.restart_needed else []
    _print(ctx, result, lambda: [applied, *restart])


# --- retry --------------------------------------------------------------------------------------------
@ctl_app.command()
def retry(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Argument(metavar="[USER]", help="Only this user's deliveries.")] = None,
) -> None:
    """Try blocked deliveries again now, instead of when their backoff ends (after fixing what `status` shows
    under `blocked`, e.g. the server's IP on WeCom's trusted-IP list)."""
    result = _call(ctx, lambda c: c.retry(user))

    def human() -> list[str]:
        if not result.woken:
            return [f"nothing of {user} waits to be retried" if user else "no delivery waits to be retried"]
        who = ", ".join(dict.fromkeys(b.user for b in result.woken))
        return [f"retrying now: {len(result.woken)} blocked conversation(s) ({who}); `ctl status` shows the outcome"]

    _print(ctx, result, human)


# --- prune ---------------------------------------------------------------------------------------------
def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size = n / 1024
    for unit in ("KB", "MB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _prune_lines(r: p.PruneReport) -> list[str]:
    tz = r.timezone
    if r.days == 0 or r.cutoff is None:
        return ["retention is off (retention_days is 0 or unset): nothing pruned; set it, or pass --days N"]
    verb = "would prune" if r.dry_run else "pruned"
    kept = f"{_time(r.oldest_kept, tz)} … {_time(r.newest_kept, tz)}" if r.oldest_kept and r.newest_kept else "none"
    rows = [
        ("messages", f"{r.messages} (each keeps only its id, so a late retry is still a duplicate)"),
        ("exchanges", str(r.exchanges)),
        ("reply parts", str(r.parts)),
        ("drafts", str(r.drafts)),
        ("files", f"{r.files} ({_bytes(r.file_bytes)})"),
        ("old tombstones", f"{r.tombstones} (ids of messages pruned 30 days before)"),
        ("messages kept", kept),
    ]
    when = f"{_time(r.cutoff, tz)} {tz}".rstrip()
    return [f"{verb} what was received before {when} (over {r.days} days ago):", *_table(rows)]


@ctl_app.command()
def prune(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go; change nothing.")] = False,
    days: Annotated[
        int | None, typer.Option(min=1, help="Prune what is older than N days instead of retention_days.")
    ] = None,
) -> None:
    """Delete now what is older than retention_days (asks nothing) and print the counts; --dry-run only counts.
    With retention_days 0 or unset and no --days, retention is off: nothing is pruned."""
    result = _call(ctx, lambda c: c.prune(dry_run=dry_run, days=days))
    _print(ctx, result, lambda: _prune_lines(result))


# --- events --------------------------------------------------------------------------------------------
def _event_line(event: p.Event, tz: str) -> str:
    data = dict(event.data)
    user = str(data.pop("user", "-"))
    rest = " ".join(f"{k}={_oneline(v if isinstance(v, str) else repr(v))}" for k, v in data.items())
    dropped = f" ({event.dropped} earlier events dropped)" if event.dropped else ""
    return f"{_time(event.at, tz, '%H:%M:%S')} {event.kind:<16} {user} {rest}".rstrip() + dropped


def _resumed_line(info: p.StreamResumed) -> str:
    """What a stream opened with --since replays, and what it cannot."""
    said = f"replaying {info.replayed} kept event(s) after #{info.since}, then live ones"
    if info.restarted:
        said += " (the daemon restarted since: its events are numbered afresh, the old run's are gone)"
    elif info.lost:
        said += f" ({info.lost} event(s) after your number are no longer kept)"
    return said


@ctl_app.command()
def events(
    ctx: typer.Context,
    since: Annotated[
        int | None,
        typer.Option(min=0, help="First replay the kept events numbered after N (an event's `seq` in --json)."),
    ] = None,
) -> None:
    """Follow the live event stream, one line per event (--json: one JSON object per line); Ctrl-C ends it.
    With --since N, the daemon's kept events after N come first (it keeps the last 2,000). Times are in the
    daemon's timezone."""
    as_json = _opts(ctx).json

    async def follow(client: ControlClient) -> None:
        tz = "" if as_json else (await client.status()).timezone
        async for event in client.events(since=since):
            info = resumed(event)
            if as_json:
                _json_out(event.model_dump_json())
            elif info is not None:
                _line(_resumed_line(info))
            else:
                _line(_event_line(event, tz))

    try:
        _call(ctx, follow)
        _fail("the daemon closed the event stream (it is stopping or restarting)")
    except (KeyboardInterrupt, BrokenPipeError):
        raise typer.Exit(0) from None
