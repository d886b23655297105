"""Tests for chatgpt_wecom.daemon.chat.templates: the built-ins, matching, operator overrides, replies."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatgpt_wecom.daemon.chat.templates import (
    BUILTIN_PROMPTS,
    Template,
    TemplateError,
    TemplateRequest,
    Templates,
    match_template,
)

REQUIRED = [
    "#周报", "#日报", "#翻译", "#中译英", "#英译中", "#解释代码", "#代码审查", "#生成sql", "#正则", "#小红书",
    "#知乎", "#产品经理", "#架构师", "#linux命令", "#润色", "#总结", "#邮件", "#面试官", "#起名", "#excel公式",
    "#git命令", "#写诗",
]  # fmt: skip
WECOM_MESSAGE_BYTES = 2048


@pytest.fixture(scope="module")
def builtins() -> Templates:
    return Templates.load()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prompts.yml"
    path.write_text(text, encoding="utf-8")
    return path


# --- built-ins ---------------------------------------------------------------------------------------------


def test_builtins_are_many_complete_and_unique(builtins: Templates) -> None:
    templates = list(builtins)
    assert len(builtins) == len(templates) >= 22
    for t in templates:
        assert t.title.startswith("#"), t
        assert t.description.strip(), t.title
        assert t.system.strip(), t.title
        assert "\n" not in t.description, t.title
        assert t.example.startswith(t.title + " "), t.title
    keys = [t.title.casefold() for t in templates]
    assert len(set(keys)) == len(keys)


def test_required_titles_present(builtins: Templates) -> None:
    titles = [t.title for t in builtins]
    assert [title for title in REQUIRED if title not in titles] == []


def test_builtin_file_is_package_data() -> None:
    from importlib import resources

    resource = resources.files("chatgpt_wecom.daemon.chat").joinpath(BUILTIN_PROMPTS)
    assert resource.is_file()


def test_examples_match_their_own_template(builtins: Templates) -> None:
    for t in builtins:
        request = match_template(t.example, builtins)
        assert request is not None and request.template is t, t.title
        assert request.text


# --- lookup and matching -----------------------------------------------------------------------------------


def test_get_is_case_insensitive_and_accepts_fullwidth_hash(builtins: Templates) -> None:
    weekly = builtins.get("#周报")
    assert weekly is not None
    assert builtins.get("＃周报") is weekly
    assert builtins.get("周报") is weekly
    assert builtins.get(" #周报 ") is weekly
    assert builtins.get("#生成SQL") is builtins.get("#生成sql") is not None
    assert builtins.get("#LINUX命令") is not None
    assert builtins.get("#不存在") is None


@pytest.mark.parametrize(
    ("message", "title", "text"),
    [
        ("#周报 本周做了登录页", "#周报", "本周做了登录页"),
        ("#周报", "#周报", ""),
        ("  #周报  \n", "#周报", ""),
        ("＃周报\n第一行\n第二行", "#周报", "第一行\n第二行"),
        ("#周报\u3000全角空格分隔", "#周报", "全角空格分隔"),
        ("#生成SQL 查出所有用户", "#生成sql", "查出所有用户"),
        ("#翻译   hello  ", "#翻译", "hello"),
    ],
)
def test_match_template(builtins: Templates, message: str, title: str, text: str) -> None:
    template = builtins.get(title)
    assert template is not None
    assert match_template(message, builtins) == TemplateRequest(template, text)


@pytest.mark.parametrize(
    "message",
    [
        "#不存在 xx",
        "#图片 一只猫",
        "#查对话 昨天",
        "#周报abc",
        "##周报 x",
        "#",
        "＃",
        "",
        "周报 本周",
        "请用 #周报 写",
        "# 周报",
    ],
)
def test_no_match(builtins: Templates, message: str) -> None:
    assert match_template(message, builtins) is None


def test_operator_can_claim_a_hash_word(tmp_path: Path) -> None:
    templates = Templates.load(write(tmp_path, "- title: 图片\n  system: 你是画师。\n"))
    request = match_template("#图片 一只猫", templates)
    assert request is not None
    assert (request.template.title, request.text) == ("#图片", "一只猫")


# --- Template ----------------------------------------------------------------------------------------------


def test_user_text_joins_prefix_text_and_suffix() -> None:
    t = Template("#t", "d", "s", prefix="请翻译：\n", suffix="\n\n只输出译文。")
    assert t.user_text("  hello\nworld \n") == "请翻译：\n\nhello\nworld\n\n只输出译文。"
    assert t.user_text("") == "请翻译：\n\n只输出译文。"
    assert Template("#t", "d", "s").user_text(" hi ") == "hi"
    assert Template("#t", "d", "s", suffix="完").user_text("hi") == "hi\n\n完"


def test_user_text_of_builtins_has_no_double_blank_lines(builtins: Templates) -> None:
    for t in builtins:
        assert "\n\n\n" not in t.user_text("内容\n\n更多"), t.title


@pytest.mark.parametrize("title", ["周报", "#", "#周 报", "", "#周报\n"])
def test_template_title_must_be_hash_and_one_word(title: str) -> None:
    with pytest.raises(ValueError, match="title"):
        Template(title, "d", "s")


def test_later_template_replaces_earlier_in_place() -> None:
    a, b, a2 = Template("#a", "1", "s"), Template("#b", "2", "s"), Template("#A", "3", "s")
    templates = Templates([a, b, a2])
    assert list(templates) == [a2, b]
    assert len(templates) == 2


# --- operator's file ---------------------------------------------------------------------------------------


def test_override_replaces_and_appends(tmp_path: Path, builtins: Templates) -> None:
    path = write(
        tmp_path,
        """
- title: "#周报"
  description: 我们公司的周报格式
  system: 你是本公司的周报助手。
  prefix: 按公司格式：
- title: 新模板
  system: 你是一个新角色。
  example: "#新模板 试试"
""",
    )
    templates = Templates.load(path)
    assert len(templates) == len(builtins) + 1
    weekly = templates.get("#周报")
    assert weekly == Template("#周报", "我们公司的周报格式", "你是本公司的周报助手。", prefix="按公司格式：")
    ordered = list(templates)
    assert (ordered[0], ordered[1]) == (weekly, builtins.get("#日报"))  # replaced in place
    new = ordered[-1]
    assert (new.title, new.description, new.system) == ("#新模板", "", "你是一个新角色。")
    assert "- #新模板" in templates.listing()
    assert templates.get("#日报") == builtins.get("#日报")


def test_override_title_case_insensitive_and_fullwidth(tmp_path: Path, builtins: Templates) -> None:
    templates = Templates.load(write(tmp_path, "- title: ＃生成SQL\n  system: 只写 SQLite。\n"))
    assert len(templates) == len(builtins)
    replaced = templates.get("#生成sql")
    assert replaced is not None and replaced.system == "只写 SQLite。"


def test_missing_or_empty_override_keeps_builtins(tmp_path: Path, builtins: Templates) -> None:
    assert len(Templates.load(tmp_path / "absent.yml")) == len(builtins)
    assert len(Templates.load(write(tmp_path, "# only a comment\n"))) == len(builtins)
    assert len(Templates.load(None)) == len(builtins)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- title: [unclosed\n", "not valid YAML at line"),
        ("title: '#周报'\nsystem: x\n", "must be a list"),
        ("- just a string\n", "template 1: must be a mapping"),
        ("- title: '#a'\n  system: x\n- system: y\n", "template 2: 'title' is missing"),
        ("- title: '#a'\n", r"template 1 \(#a\): 'system' is missing"),
        ("- title: '#a'\n  system: '  '\n", r"template 1 \(#a\): 'system' is missing or empty"),
        ("- title: '#a'\n  system: x\n- title: '#A'\n  system: y\n", r"template 2 \(#A\): same title as template 1"),
        ("- title: 'a'\n  system: x\n- title: '＃a'\n  system: y\n", "template 2 .*same title as template 1"),
        ("- title: '#a b'\n  system: x\n", "'title' must be one word"),
        ("- title: '#'\n  system: x\n", "'title' is missing or empty|'title' must be one word"),
        ("- title: '#a'\n  system: x\n  sytem: y\n", r"unknown key\(s\) sytem"),
        ("- title: '#a'\n  system: 42\n", "'system' must be text"),
        ("- title: '#a'\n  system: x\n  prefix: [1]\n", "'prefix' must be text"),
    ],
)
def test_invalid_override_names_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TemplateError, match=problem) as info:
        Templates.load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unreadable_override(tmp_path: Path) -> None:
    path = tmp_path / "prompts.yml"
    path.write_bytes(b"- title: \xff\xfe\n")
    with pytest.raises(TemplateError, match="cannot read it") as info:
        Templates.load(path)
    assert str(path) in str(info.value)


# --- replies -----------------------------------------------------------------------------------------------


def test_listing_names_every_template_and_fits_one_message(builtins: Templates) -> None:
    listing = builtins.listing()
    for t in builtins:
        assert f"- {t.title} — {t.description}\n" in listing
    assert "#标题 内容" in listing
    assert len(listing.encode("utf-8")) <= WECOM_MESSAGE_BYTES


def test_listing_lines_do_not_start_with_hash(builtins: Templates) -> None:
    # WeCom markdown may read a line starting with "#" as a heading.
    assert not [line for line in builtins.listing().splitlines() if line.startswith("#")]


def test_usage_mentions_description_and_example(builtins: Templates) -> None:
    weekly = builtins.get("#周报")
    assert weekly is not None
    usage = builtins.usage(weekly)
    assert weekly.description in usage
    assert weekly.example in usage
    assert not [line for line in usage.splitlines() if line.startswith("#")]


def test_usage_without_example_shows_the_shape() -> None:
    t = Template("#自定义", "", "s")
    usage = Templates([t]).usage(t)
    assert "#自定义 你的内容" in usage
