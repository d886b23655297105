"""Tests for chatgpt_wecom.daemon.channels.wecom.messages and the tests.wecom_callbacks helper."""

from __future__ import annotations

import contextlib
import dataclasses
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chatgpt_wecom.daemon.channels.wecom.crypto import WeComCrypto
from chatgpt_wecom.daemon.channels.wecom.messages import (
    Envelope,
    InboundMessage,
    MessageError,
    _flat_fields,
    _top_level_fields,
    _tree_fields,
    parse_envelope,
    parse_message,
)
from tests.wecom_callbacks import TEST_AES_KEY, TEST_CORP_ID, TEST_TOKEN, CallbackSigner, cdata
from tests.wecom_vectors import A2_PLAINTEXT, B2_PLAINTEXT

# --- Samples (wecom-protocol.md §3, §4) ---

IMAGE = """<xml>
   <ToUserName><![CDATA[toUser]]></ToUserName>
   <FromUserName><![CDATA[fromUser]]></FromUserName>
   <CreateTime>1348831860</CreateTime>
   <MsgType><![CDATA[image]]></MsgType>
   <PicUrl><![CDATA[this is a url]]></PicUrl>
   <MediaId><![CDATA[media_id]]></MediaId>
   <MsgId>1234567890123456</MsgId>
   <AgentID>1</AgentID>
</xml>"""
VOICE = """<xml>
   <ToUserName><![CDATA[toUser]]></ToUserName>
   <FromUserName><![CDATA[fromUser]]></FromUserName>
   <CreateTime>1357290913</CreateTime>
   <MsgType><![CDATA[voice]]></MsgType>
   <MediaId><![CDATA[media_id]]></MediaId>
   <Format><![CDATA[Format]]></Format>
   <MsgId>1234567890123456</MsgId>
   <AgentID>1</AgentID>
</xml>"""
VOICE_REAL = (
    "<xml><ToUserName><![CDATA[wwe14538319d196cfa]]></ToUserName><FromUserName><![CDATA[username]]>"
    "</FromUserName><CreateTime>1636870250</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId>"
    "<![CDATA[17EQcZgq]]></MediaId><Format><![CDATA[amr]]></Format><MsgId>7030302926403775470</MsgId>"
    "<AgentID>1000002</AgentID></xml>"
)
SUBSCRIBE = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[UserID]]></FromUserName>
  <CreateTime>1348831860</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[subscribe]]></Event>
  <AgentID>1</AgentID>
</xml>"""
ENTER_AGENT = """<xml><ToUserName><![CDATA[toUser]]></ToUserName>
<FromUserName><![CDATA[FromUser]]></FromUserName>
<CreateTime>1408091189</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[enter_agent]]></Event>
<EventKey><![CDATA[]]></EventKey>
<AgentID>1</AgentID>
</xml>"""
CLICK = """<xml>
<ToUserName><![CDATA[toUser]]></ToUserName>
<FromUserName><![CDATA[FromUser]]></FromUserName>
<CreateTime>123456789</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[click]]></Event>
<EventKey><![CDATA[EVENTKEY]]></EventKey>
<AgentID>1</AgentID>
</xml>"""
LOCATION_EVENT = """<xml>
<ToUserName><![CDATA[toUser]]></ToUserName>
<FromUserName><![CDATA[FromUser]]></FromUserName>
<CreateTime>123456789</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[LOCATION]]></Event>
<Latitude>23.104105</Latitude>
<Longitude>113.320107</Longitude>
<Precision>65.000000</Precision>
<AgentID>1</AgentID>
</xml>"""
LOCATION_MSG = (
    "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName>"
    "<CreateTime>1351776360</CreateTime><MsgType><![CDATA[location]]></MsgType>"
    "<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale>"
    "<Label><![CDATA[位置信息]]></Label><MsgId>1234567890123456</MsgId><AgentID>1</AgentID></xml>"
)


def _msg(**tags: str) -> str:
    """A minimal message document with one child per keyword argument, in argument order."""
    return "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in tags.items()) + "</xml>"


# --- Known samples ---


def test_parse_a2_plaintext() -> None:
    m = parse_message(A2_PLAINTEXT)
    assert m.to_user == "wx5823bf96d3bd56c7"
    assert m.from_user == "mycreate"
    assert m.create_time == 1409659813
    assert m.msg_type == "text"
    assert m.content == "hello"
    assert m.msg_id == "4561255354251345929"
    assert m.agent_id == "218"
    assert m.event == m.event_key == m.media_id == ""
    assert not m.is_event
    assert m.dedupe_key == "msg:4561255354251345929"
    assert m.fields["CreateTime"] == "1409659813"


def test_parse_b2_plaintext_without_cdata() -> None:
    m = parse_message(B2_PLAINTEXT)
    assert (m.from_user, m.msg_type, m.content, m.msg_id, m.agent_id) == (
        "ChenJiaShun",
        "text",
        "你好",
        "1456453720",
        "1000002",
    )


def test_parse_image() -> None:
    m = parse_message(IMAGE)
    assert (m.msg_type, m.pic_url, m.media_id, m.content) == ("image", "this is a url", "media_id", "")
    assert m.dedupe_key == "msg:1234567890123456"


@pytest.mark.parametrize(("xml", "fmt"), [(VOICE, "Format"), (VOICE_REAL, "amr")])
def test_parse_voice(xml: str, fmt: str) -> None:
    m = parse_message(xml)
    assert m.msg_type == "voice"
    assert m.format == fmt
    assert m.media_id
    assert m.recognition == ""


def test_voice_recognition_when_present() -> None:
    xml = VOICE.replace("</Format>", "</Format><Recognition><![CDATA[ 你好 ]]></Recognition>")
    assert parse_message(xml).recognition == "你好"


def test_parse_location_message() -> None:
    m = parse_message(LOCATION_MSG)
    assert m.msg_type == "location"
    assert m.fields["Location_X"] == "23.134521"
    assert m.fields["Label"] == "位置信息"


def test_parse_subscribe_event() -> None:
    m = parse_message(SUBSCRIBE)
    assert m.is_event
    assert (m.event, m.event_key, m.msg_id) == ("subscribe", "", "")
    assert m.dedupe_key == "evt:UserID:1348831860:subscribe::"


def test_parse_enter_agent_event() -> None:
    m = parse_message(ENTER_AGENT)
    assert (m.msg_type, m.event, m.event_key, m.from_user) == ("event", "enter_agent", "", "FromUser")
    assert m.fields["EventKey"] == ""


def test_parse_click_event_keeps_event_key_case() -> None:
    m = parse_message(CLICK)
    assert (m.event, m.event_key) == ("click", "EVENTKEY")


def test_parse_location_event_is_lowercased() -> None:
    m = parse_message(LOCATION_EVENT)
    assert m.event == "location"
    assert m.fields["Event"] == "LOCATION"  # raw value kept in fields
    assert m.fields["Latitude"] == "23.104105"


def test_unknown_msg_type_is_lowercased_and_kept() -> None:
    m = parse_message(
        _msg(FromUserName="u", CreateTime="1", MsgType="<![CDATA[MiniProgram]]>", Content="x", AppId="wxabc")
    )
    assert m.msg_type == "miniprogram"
    assert m.content == ""  # Content is only taken for text messages...
    assert m.fields["Content"] == "x"  # ...but stays available in fields
    assert m.fields["AppId"] == "wxabc"


def test_message_with_xml_declaration_and_elements_in_any_order() -> None:
    xml = '<?xml version="1.0" encoding="UTF-8"?>' + _msg(
        MsgId="9", Content="hi", MsgType="TEXT", CreateTime="5", FromUserName="u"
    )
    m = parse_message(xml)
    assert (m.msg_type, m.content, m.to_user, m.agent_id) == ("text", "hi", "", "")


# --- Value handling ---


def test_values_are_stripped_except_content() -> None:
    xml = _msg(
        FromUserName="\n  alice \n",
        CreateTime=" 42 ",
        MsgType="\n<![CDATA[text]]>\n",
        Content="<![CDATA[  two\nlines \n]]>",
        MsgId=" 18446744073709551615 ",
    )
    m = parse_message(xml)
    assert m.from_user == "alice"
    assert m.create_time == 42
    assert m.content == "  two\nlines \n"
    assert m.msg_id == "18446744073709551615"  # beyond 2**63, kept as text


def test_entities_and_nested_elements() -> None:
    xml = _msg(FromUserName="u", CreateTime="1", MsgType="text", Content="a &lt;b&gt; &amp; &#20320;")
    assert parse_message(xml).content == "a <b> & 你"
    nested = _msg(FromUserName="u", CreateTime="1", MsgType="image", Image="<MediaId>m</MediaId>")
    assert parse_message(nested).fields["Image"] == ""


def test_repeated_tag_first_wins() -> None:
    xml = "<xml><FromUserName>a</FromUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>"
    xml += "<MsgType>text</MsgType></xml>"
    assert parse_message(xml).from_user == "a"


def test_message_is_frozen_hashable_and_fields_read_only() -> None:
    m = parse_message(A2_PLAINTEXT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.content = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.fields["Content"] = "x"  # type: ignore[index]
    assert hash(m) == hash(parse_message(A2_PLAINTEXT))
    assert m == parse_message(A2_PLAINTEXT)


def test_inbound_message_can_be_built_directly() -> None:
    m = InboundMessage(to_user="c", from_user="u", create_time=1, msg_type="text", content="hi", msg_id="7")
    assert m.fields == {}
    assert m.dedupe_key == "msg:7"


# --- Missing / bad fields ---


@pytest.mark.parametrize(
    "xml",
    [
        _msg(CreateTime="1", MsgType="text"),
        _msg(FromUserName="", CreateTime="1", MsgType="text"),
        _msg(FromUserName="  ", CreateTime="1", MsgType="text"),
        _msg(FromUserName="u", CreateTime="1"),
        _msg(FromUserName="u", CreateTime="1", MsgType="<![CDATA[]]>"),
        _msg(FromUserName="u", MsgType="text"),
        _msg(FromUserName="u", CreateTime="", MsgType="text"),
        _msg(FromUserName="u", CreateTime="abc", MsgType="text"),
        _msg(FromUserName="u", CreateTime="-1", MsgType="text"),
        _msg(FromUserName="u", CreateTime="1.5", MsgType="text"),
        _msg(FromUserName="u", CreateTime="1_000", MsgType="text"),
        _msg(FromUserName="u", CreateTime="١٢٣", MsgType="text"),
        _msg(FromUserName="u", CreateTime="9" * 5000, MsgType="text"),
    ],
)
def test_missing_or_bad_required_fields(xml: str) -> None:
    with pytest.raises(MessageError):
        parse_message(xml)


# --- Hostile and malformed documents ---

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>
<Content>&lol3;</Content></xml>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>
<Content>&xxe;</Content></xml>"""
EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE xml SYSTEM "http://example.invalid/evil.dtd">
<xml><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>"""
PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://example.invalid/p.dtd"> %p;]>
<xml><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>"""

HOSTILE = {
    "billion_laughs": BILLION_LAUGHS,
    "external_entity": EXTERNAL_ENTITY,
    "external_dtd": EXTERNAL_DTD,
    "parameter_entity": PARAMETER_ENTITY,
    "empty": "",
    "garbage": "\x00\x01 not xml at all",
    "text_only": "SECRET-PLAINTEXT",
    "truncated": A2_PLAINTEXT[:-3],
    "junk_after_root": A2_PLAINTEXT + "<more/>",
    "undefined_entity": _msg(FromUserName="u", CreateTime="1", MsgType="text", Content="&nbsp;"),
    "lone_surrogate": "\ud800" + A2_PLAINTEXT,
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_or_malformed_message(case: str) -> None:
    with pytest.raises(MessageError) as info:
        parse_message(HOSTILE[case])
    assert "SECRET" not in str(info.value)
    assert "passwd" not in str(info.value)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_or_malformed_envelope(case: str) -> None:
    body = HOSTILE[case].replace("<Content>", "<Encrypt>x</Encrypt><Content>")
    with pytest.raises(MessageError):
        parse_envelope(body.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\x00\x81garbage",
        b'<?xml version="1.0" encoding="no-such-codec"?><xml><Encrypt>x</Encrypt></xml>',
        b"<xml><Encrypt>abc</Encrypt></xml" + b"\x80",
    ],
)
def test_garbage_bytes_envelope(body: bytes) -> None:
    with pytest.raises(MessageError):
        parse_envelope(body)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_leak_other_exceptions(data: bytes) -> None:
    for parse in (parse_envelope, lambda b: parse_message(b.decode("utf-8", "replace"))):
        with contextlib.suppress(MessageError):
            parse(data)


# --- Envelope ---


def test_parse_envelope_official_order_with_newlines() -> None:
    body = (
        b"<xml>\n   <ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
        b"   <Encrypt><![CDATA[RypEvHKD8QQ+/==]]></Encrypt>\n"
        b"   <AgentID><![CDATA[218]]></AgentID>\n</xml>"
    )
    assert parse_envelope(body) == Envelope(to_user="wx5823bf96d3bd56c7", agent_id="218", encrypt="RypEvHKD8QQ+/==")


def test_parse_envelope_without_optional_fields() -> None:
    assert parse_envelope(b"<xml><Encrypt>abc</Encrypt></xml>") == Envelope("", "", "abc")


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><ToUserName>c</ToUserName><AgentID>1</AgentID></xml>",
        b"<xml><Encrypt></Encrypt></xml>",
        b"<xml><Encrypt><![CDATA[]]></Encrypt></xml>",
        b"<xml><Encrypt>\n  </Encrypt></xml>",
        b"<xml><Inner><Encrypt>abc</Encrypt></Inner></xml>",
    ],
)
def test_parse_envelope_missing_encrypt(body: bytes) -> None:
    with pytest.raises(MessageError, match="Encrypt"):
        parse_envelope(body)


# --- Dedupe keys ---


def _event(event: str, key: str = "", change_type: str = "", ct: str = "1700000000", user: str = "u") -> str:
    extra = f"<ChangeType>{change_type}</ChangeType>" if change_type else ""
    return _msg(FromUserName=user, CreateTime=ct, MsgType="event", Event=event, EventKey=key, AgentID="1").replace(
        "</xml>", extra + "</xml>"
    )


def test_distinct_events_in_same_second_have_distinct_keys() -> None:
    keys = {
        parse_message(_event("click", "A")).dedupe_key,
        parse_message(_event("click", "B")).dedupe_key,
        parse_message(_event("enter_agent")).dedupe_key,
        parse_message(_event("change_contact", change_type="update_user")).dedupe_key,
        parse_message(_event("change_contact", change_type="create_user")).dedupe_key,
        parse_message(_event("click", "A", user="v")).dedupe_key,
        parse_message(_event("click", "A", ct="1700000001")).dedupe_key,
    }
    assert len(keys) == 7


def test_retried_event_has_same_key() -> None:
    first = parse_message(_event("click", "A"))
    retry = parse_message(_event("CLICK", "A"))
    assert first.dedupe_key == retry.dedupe_key == "evt:u:1700000000:click:A:"


def test_msg_id_takes_precedence() -> None:
    a = parse_message(_msg(FromUserName="u", CreateTime="1", MsgType="text", Content="a", MsgId="5"))
    b = parse_message(_msg(FromUserName="u", CreateTime="2", MsgType="text", Content="b", MsgId="5"))
    assert a.dedupe_key == b.dedupe_key == "msg:5"


# --- tests.wecom_callbacks helper (full round trip through crypto + parsing) ---


def _receive(signer: CallbackSigner, query: dict[str, str], body: bytes) -> InboundMessage:
    server = WeComCrypto(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID)
    env = parse_envelope(body)
    assert (env.to_user, env.agent_id) == (signer.corp_id, signer.agent_id)
    xml = server.decrypt_message(query["msg_signature"], query["timestamp"], query["nonce"], env.encrypt)
    return parse_message(xml)


def test_signer_text_round_trip() -> None:
    signer = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID)
    req = signer.text("zhangsan", "hello ]]> <b>&amp;</b>\r\n", msg_id=2**63 + 5, create_time=1700000000)
    assert set(req.query) == {"msg_signature", "timestamp", "nonce"}
    m = _receive(signer, req.query, req.body)
    assert (m.from_user, m.to_user, m.msg_type, m.create_time) == (
        "zhangsan",
        TEST_CORP_ID,
        "text",
        1700000000,
    )
    assert m.content == "hello ]]> <b>&amp;</b>\r\n"
    assert m.msg_id == str(2**63 + 5)
    assert m.agent_id == "1000002"


def test_signer_event_round_trip() -> None:
    signer = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID, agent_id="42")
    req = signer.event("lisi", "enter_agent")
    m = _receive(signer, req.query, req.body)
    assert (m.is_event, m.event, m.event_key, m.agent_id, m.msg_id) == (True, "enter_agent", "", "42", "")


def test_signer_message_and_url_check() -> None:
    signer = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID)
    req = signer.message(IMAGE)
    assert _receive(signer, req.query, req.body).media_id == "media_id"

    check = signer.url_check("1616140317555161061")
    assert check.body == b""
    server = WeComCrypto(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID)
    q = check.query
    assert server.verify_url(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"]) == "1616140317555161061"


def test_signer_envelope_to_user_override() -> None:
    signer = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID)
    assert parse_envelope(signer.envelope("abc", to_user="other")) == Envelope("other", "1000002", "abc")


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Cn"]) | st.sampled_from("\r\n\t]>")))
def test_cdata_round_trip(content: str) -> None:
    xml = "<xml><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>"
    xml += f"<Content>{cdata(content)}</Content></xml>"
    assert parse_message(xml).content == content


def test_test_identity_constants() -> None:
    assert len(TEST_AES_KEY) == 43
    assert TEST_CORP_ID == "ww1436e0e65a779aee"
    WeComCrypto(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID)  # valid key


# --- The readers against ElementTree ---
# A flat document is read with two regular expressions, anything else with defusedxml's ElementTree. For any
# document, each must give what ElementTree gives as each root child's `.text` (text before its first
# sub-element; comments, processing instructions and CDATA sections transparent; the first of a repeated tag), and
# a document ElementTree refuses must be refused.

_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Cn"]) | st.sampled_from("\r\n\t"), max_size=6)
_PIECE = st.one_of(
    _TEXT.map(escape),
    _TEXT.filter(lambda t: "]]>" not in t).map(lambda t: f"<![CDATA[{t}]]>"),
    st.sampled_from(["<!-- a comment -->", "<?pi data?>", "&#20320;&amp;", "&#13;", "<e/>", "\r\n", " "]),
    st.sampled_from(["]]>", "&", "<", "\x00", "\x0b", "\ufffe", "&nbsp;"]),  # each makes the document malformed
)
_TAG = st.sampled_from(["Content", "MsgType", "a", "B-1", "x_y", "xml", "1a"])  # "1a": not a name, malformed


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda tag, parts: f"<{tag}>{''.join(parts)}</{tag}>", _TAG, st.lists(st.one_of(_PIECE, children), max_size=4)
    )


_DOCUMENT = st.builds(
    lambda head, parts, tail: head + "<xml>" + "".join(parts) + "</xml>" + tail,
    st.sampled_from(["", "", "", '<?xml version="1.0" encoding="UTF-8"?>', " ", "\ufeff"]),
    st.lists(st.one_of(_PIECE, st.recursive(_element(st.nothing()), _element, max_leaves=6)), max_size=6),
    st.sampled_from(["", "", "\n", " x"]),
)


@settings(max_examples=400)
@given(_DOCUMENT)
@example("<xml><a><![CDATA[x\ry]]></a></xml>")  # expat reads "\r" as "\n"
@example("<xml><a>x</a>\r\n</xml>")
@example("<xml><1a>x</1a></xml>")  # not a name
def test_fields_are_what_elementtree_reads(document: str) -> None:
    try:
        root = ET.fromstring(document)  # the reference reading (the C parser; a generated document, no DTD)
    except ET.ParseError:
        for data in (document, document.encode()):
            assert _flat_fields(data) is None
            with pytest.raises(MessageError):
                _top_level_fields(data)
        return
    expected: dict[str, str] = {}
    for child in root:
        expected.setdefault(str(child.tag), child.text or "")
    for data in (document, document.encode()):
        assert _top_level_fields(data) == expected
        assert _tree_fields(data) == expected
        assert _flat_fields(data) in (None, expected)


def test_what_wecom_sends_takes_the_flat_reader() -> None:
    signer = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID)
    request = signer.text("u", "a <b> & c\n你好", 7)
    envelope = _flat_fields(request.body)
    assert envelope is not None and envelope.keys() == {"ToUserName", "Encrypt", "AgentID"}
    inner = signer.crypto.decrypt(envelope["Encrypt"])
    assert _flat_fields(inner) == _tree_fields(inner)
    assert (_flat_fields(inner) or {})["Content"] == "a <b> & c\n你好"
    for document in (A2_PLAINTEXT, B2_PLAINTEXT, IMAGE.strip(), A2_PLAINTEXT.replace("\n", "\n  ")):
        assert _flat_fields(document) == _tree_fields(document), document
    # A CDATA section cut in two around "]]>" (as the signer writes it) is ElementTree's to read, and read right.
    split = "<xml><Content><![CDATA[a ]]]]><![CDATA[> b]]></Content></xml>"
    assert _flat_fields(split) is None
    assert _top_level_fields(split) == {"Content": "a ]]> b"}


@pytest.mark.parametrize(
    "document",
    [
        '<?xml version="1.0"?><!DOCTYPE xml><xml><a>1</a></xml>',  # a DTD with nothing in it is still refused
        '<?xml version="1.0" encoding="ISO-8859-1"?><xml><a>caf\u00e9</a></xml>'.encode("latin-1"),  # declared: read
    ],
)
def test_a_doctype_is_refused_and_a_declared_encoding_is_read(document: str | bytes) -> None:
    if isinstance(document, str):
        with pytest.raises(MessageError, match="forbidden"):
            _top_level_fields(document)
    else:
        assert _top_level_fields(document) == {"a": "café"}
