"""Formatting converters: MSN X-MMS-IM-Format ↔ RichText ↔ Matrix HTML / mIRC codes."""

from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import example, given, settings
from hypothesis import strategies as st

from msnbridge.formatting import (
    MessageKind,
    RichText,
    Span,
    as_emote_text,
    from_html,
    from_mirc,
    from_msn,
    html_to_mirc,
    html_to_msn,
    mirc_to_html,
    mirc_to_msn,
    msn_to_html,
    msn_to_mirc,
    nearest_mirc_color,
    strip_mirc,
    strip_reply_fallback,
    to_html,
    to_mirc,
    to_mirc_lines,
    to_msn,
)
from msnbridge.formatting.mirc_colors import PALETTE
from puppets.message import TextFormat, TextMessage

# The two formats of the seed transcript (000_9b42703de2179cf8.txt).
SEED_PLAIN = "FN=MS%20Sans%20Serif; EF=; CO=0; CS=0; PF=0"
SEED_BOLD = "FN=Lucida%20Sans%20Unicode; EF=B; CO=ff0000; CS=0; PF=22"


def msn(text: str, header: str) -> TextMessage:
    return TextMessage(text, TextFormat.parse(header))


# -- model ---------------------------------------------------------------------------


def test_richtext_equality_ignores_span_cuts_and_merges() -> None:
    cut = RichText([Span("he", bold=True), Span(""), Span("llo", bold=True), Span(" x")])
    whole = RichText([Span("hello", bold=True), Span(" x")])
    assert cut == whole
    assert cut.merged().spans == whole.spans
    assert cut != RichText([Span("hello"), Span(" x")])
    assert cut != RichText(whole.spans, MessageKind.EMOTE)
    assert cut.plain() == "hello x"


def test_common_style_ignores_blank_spans() -> None:
    rich = RichText([Span("a", bold=True, color=5), Span(" "), Span("b", bold=True, color=5)])
    shared = rich.common_style()
    assert (shared.bold, shared.color, shared.italic) == (True, 5, False)
    mixed = RichText([Span("a", bold=True, color=5), Span("b", color=6)])
    assert (mixed.common_style().bold, mixed.common_style().color) == (False, None)


def test_lines_keep_styles() -> None:
    rich = RichText([Span("one\ntwo", bold=True), Span(" three\n")])
    lines = rich.lines()
    assert [line.plain() for line in lines] == ["one", "two three", ""]
    assert lines[1].spans[0] == Span("two", bold=True)


# -- MSN -----------------------------------------------------------------------------


def test_seed_format_is_bold_blue_because_colorref_is_bgr() -> None:
    rich = from_msn(msn("Hello. ", SEED_BOLD))
    assert rich.spans == [Span("Hello. ", bold=True, color=0x0000FF)]


def test_co_ff_is_red_and_co_0_is_the_default_colour() -> None:
    assert from_msn(msn("x", "FN=Arial; EF=; CO=ff")).spans == [Span("x", color=0xFF0000)]
    assert from_msn(msn("Are you there?", SEED_PLAIN)).spans == [Span("Are you there?")]


def test_msn_to_html_seed() -> None:
    body, html = msn_to_html(msn("Hello. ", SEED_BOLD))
    assert body == "Hello. "
    assert html == '<font color="#0000ff"><strong>Hello. </strong></font>'


def test_plain_msn_message_has_no_html() -> None:
    assert msn_to_html(msn("Are you there? \nI’m Alice", SEED_PLAIN)) == (
        "Are you there? \nI’m Alice",
        None,
    )


def test_msn_effects_all_map_to_html() -> None:
    _, html = msn_to_html(msn("x", "FN=Arial; EF=BIUS; CO=0"))
    assert html == "<strong><em><u><del>x</del></u></em></strong>"


def test_msn_script_is_escaped_in_html() -> None:
    body, html = msn_to_html(msn('<script>alert("x")</script>\n& <b>', "EF=I"))
    assert body == '<script>alert("x")</script>\n& <b>'
    assert html == '<em>&lt;script&gt;alert("x")&lt;/script&gt;<br>&amp; &lt;b&gt;</em>'


def test_whole_message_style_becomes_the_msn_format() -> None:
    text, fmt = html_to_msn('<b><font color="#00ff00">all green</font></b>', "all green")
    assert text == "all green"
    assert (fmt.bold, fmt.italic, fmt.color) == (True, False, 0x00FF00)
    assert "EF=B" in fmt.header() and "CO=ff00" in fmt.header()  # BGR on the wire


def test_partial_styles_become_markers() -> None:
    text, fmt = html_to_msn(
        "this is <strong>very</strong> <em>important</em>, <del>not</del> <u>under</u>", ""
    )
    assert text == "this is *very* _important_, ~not~ under"
    assert fmt == TextFormat()


def test_markers_hug_words_and_nest() -> None:
    rich = RichText([Span("a "), Span(" bold ", bold=True), Span("both", bold=True, italic=True)])
    assert to_msn(rich)[0] == "a  *bold _both_*"
    assert to_msn(rich, markers=False)[0] == "a  bold both"


def test_links_and_code_in_msn_text() -> None:
    html = (
        '<a href="https://example.org/x">the docs</a>, <a href="https://example.org/">'
        'https://example.org/</a>, <a href="mailto:bob@example.org">bob@example.org</a> '
        "and <code>x = 1</code>"
    )
    text, _ = html_to_msn(html, "")
    assert text == (
        "the docs (https://example.org/x), https://example.org/, bob@example.org and x = 1"
    )


def test_base_format_supplies_font() -> None:
    base = TextFormat.parse("FN=Comic%20Sans%20MS; EF=I; CO=ff; CS=0; PF=22")
    text, fmt = html_to_msn(None, "plain body", base)
    assert text == "plain body"
    assert (fmt.font, fmt.pitch, fmt.italic, fmt.color) == ("Comic Sans MS", "22", False, 0)


def test_html_without_readable_text_falls_back_to_body() -> None:
    assert html_to_msn("<mx-reply>only</mx-reply>", "fallback")[0] == "fallback"


def test_emote_helper() -> None:
    rich = RichText([Span("waves", bold=True)], MessageKind.EMOTE)
    text, fmt = to_msn(as_emote_text(rich, "Alice"))
    assert (text, fmt.bold) == ("* Alice waves", True)
    mixed = RichText([Span("waves "), Span("hard", italic=True)], MessageKind.EMOTE)
    assert to_msn(as_emote_text(mixed, "Alice"))[0] == "* Alice waves _hard_"


# -- Matrix HTML in ------------------------------------------------------------------

ELEMENT_REPLY = (
    '<mx-reply><blockquote><a href="https://matrix.to/#/!room:example.org/$event">In reply to'
    '</a> <a href="https://matrix.to/#/@alice:example.org">@alice:example.org</a><br>'
    "original <b>message</b></blockquote></mx-reply>my <b>answer</b>"
)


def test_matrix_reply_fallback_is_dropped() -> None:
    rich = from_html(ELEMENT_REPLY)
    assert rich == RichText([Span("my "), Span("answer", bold=True)])


def test_plain_reply_fallback_is_stripped() -> None:
    body = "> <@alice:example.org> original message\n> second line\n\nmy answer\n> not fallback"
    assert strip_reply_fallback(body) == "my answer\n> not fallback"
    assert strip_reply_fallback("no quote here") == "no quote here"


def test_html_styles() -> None:
    rich = from_html(
        "<b>b</b><strong>B</strong><i>i</i><em>I</em><u>u</u><s>s</s><del>d</del>"
        '<strike>k</strike><font color="#ff0000">r</font><span data-mx-color="#0f0">g</span>'
        '<font data-mx-color="blue">l</font><code>c</code><a href="https://x.org">a</a>'
    )
    assert rich.spans == [
        Span("bB", bold=True),
        Span("iI", italic=True),
        Span("u", underline=True),
        Span("sdk", strike=True),
        Span("r", color=0xFF0000),
        Span("g", color=0x00FF00),
        Span("l", color=0x0000FF),
        Span("c", code=True),
        Span("a", link="https://x.org"),
    ]


def test_html_structure_to_lines() -> None:
    html = (
        "<p>para one</p>\n<blockquote>\n<p>quoted</p>\n<p>two</p>\n</blockquote>\n"
        '<ul>\n<li>a</li>\n<li>b<ol start="3"><li>c</li></ol></li>\n</ul>\n'
        "<pre><code>x  = 1\ny\n</code></pre>\n<p>line<br>break &amp; &lt;tag&gt; &eacute;&#233;</p>"
    )
    assert from_html(html).plain() == (
        "para one\n\n> quoted\n>\n> two\n\n- a\n- b\n  3. c\n\nx  = 1\ny\n\nline\nbreak & <tag> éé"
    )


def test_html_whitespace_collapses_outside_pre() -> None:
    assert from_html("  a \n\t b  <b> c </b> d ").plain() == "a b c d"


def test_html_scripts_dropped_unknown_tags_kept() -> None:
    html = "<script>alert(1)</script><style>p{}</style><blink>still</blink> <x-y>here</x-y>"
    assert from_html(html).plain() == "still here"


def test_user_pill_becomes_name_and_emoji_image_its_alt() -> None:
    html = (
        '<a href="https://matrix.to/#/@bob:example.org">Bob</a>: look '
        '<img data-mx-emoticon src="mxc://example.org/abc" alt=":cat:">'
    )
    assert from_html(html).spans == [Span("Bob: look :cat:")]


def test_misnested_and_unclosed_html() -> None:
    rich = from_html("<b>bold <i>both</b> italic?</i> <u>open")
    assert rich.spans == [
        Span("bold ", bold=True),
        Span("both", bold=True, italic=True),
        Span(" italic? "),
        Span("open", underline=True),
    ]


# -- Matrix HTML out -----------------------------------------------------------------


def test_to_html_refuses_unsafe_link_schemes() -> None:
    html = to_html(RichText([Span("click", link="javascript:alert(1)")]))
    assert "<a" not in html
    assert html == "click (javascript:alert(1))"
    quoted = to_html(RichText([Span("x", link='https://e.org/"><script>')]))
    assert quoted == '<a href="https://e.org/&quot;&gt;&lt;script&gt;">x</a>'


# -- mIRC in -------------------------------------------------------------------------


def test_mirc_codes() -> None:
    line = (
        "\x02bold\x02 \x1ditalic\x1d \x1funder\x1f \x1estrike\x1e \x11mono\x11 "
        "\x0304red\x03 \x0312,01blue on black\x0399 \x0352ext\x03 \x04FF8800hex\x04 "
        "\x16rev\x16 \x02\x0303all\x0f plain"
    )
    assert from_mirc(line).spans == [
        Span("bold", bold=True),
        Span(" "),
        Span("italic", italic=True),
        Span(" "),
        Span("under", underline=True),
        Span(" "),
        Span("strike", strike=True),
        Span(" "),
        Span("mono", code=True),
        Span(" "),
        Span("red", color=0xFF0000),
        Span(" "),
        Span("blue on black", color=0x0000FC),
        Span(" "),
        Span("ext", color=0xFF0000),  # extended colour 52
        Span(" "),
        Span("hex", color=0xFF8800),
        Span(" rev "),
        Span("all", bold=True, color=0x009300),
        Span(" plain"),
    ]


def test_mirc_colour_digit_edge_cases() -> None:
    # Two digits at most: "\x031234" is colour 12 then the text "34".
    assert from_mirc("\x031234").spans == [Span("34", color=0x0000FC)]
    # A comma without a background digit is text.
    assert from_mirc("\x034,x").spans == [Span(",x", color=0xFF0000)]
    # A bare \x03 resets the colour; "\x03,5" is not a valid code and keeps ",5".
    assert from_mirc("\x034a\x03,5").spans == [Span("a", color=0xFF0000), Span(",5")]
    # Colour 99 is the default.
    assert from_mirc("\x0399x").spans == [Span("x")]


def test_mirc_drops_other_control_characters() -> None:
    assert strip_mirc("\x01ACTION\x00 x\r\x07") == "ACTION x"


def test_mirc_to_msn() -> None:
    text, fmt = mirc_to_msn("\x02\x0304warning:\x02 \x02disk full")
    assert text == "warning: disk full"
    assert (fmt.bold, fmt.color) == (True, 0xFF0000)
    assert "CO=ff;" in fmt.header()
    assert mirc_to_msn("a \x02b\x02 c")[0] == "a *b* c"


def test_mirc_to_html() -> None:
    assert mirc_to_html("plain") == ("plain", None)
    assert mirc_to_html("\x1d<i>\x1d") == ("<i>", "<em>&lt;i&gt;</em>")


# -- mIRC out ------------------------------------------------------------------------


def test_nearest_mirc_colour() -> None:
    assert nearest_mirc_color(0xFF0000) == 4
    assert nearest_mirc_color(0xFE0101) == 4
    assert nearest_mirc_color(0x000080) == 2  # navy
    assert nearest_mirc_color(0x808080) == 14
    assert nearest_mirc_color(0xFFA500) == 7  # orange
    assert nearest_mirc_color(0x0000FF) == 12
    assert nearest_mirc_color(0x000000) == 1
    assert nearest_mirc_color(0xFFFFFF) == 0
    assert nearest_mirc_color(0xC0C0C0) == 15
    assert nearest_mirc_color(0x006400) == 3  # dark green
    for index, colour in enumerate(PALETTE[:16]):
        assert nearest_mirc_color(colour) == index


def test_msn_to_mirc_seed() -> None:
    assert msn_to_mirc(msn("Hello. ", SEED_BOLD)) == "\x02\x0312Hello. "
    assert msn_to_mirc(msn("Hello. ", SEED_BOLD), hex_colors=True) == "\x02\x040000FFHello. "


def test_to_mirc_guards_digits_after_colour() -> None:
    rich = RichText([Span("1", color=0xFF0000), Span("2"), Span(",3", color=0x00FF00)])
    line = to_mirc(rich)
    assert line == "\x0304\x02\x021\x03\x02\x022\x0309\x02\x02,3"
    assert from_mirc(line).plain() == "12,3"
    assert [s.color for s in from_mirc(line).spans] == [0xFF0000, None, 0x00FC00]


def test_to_mirc_reopens_styles_on_each_line() -> None:
    rich = RichText([Span("one\ntwo", bold=True, color=0xFF0000), Span(" three\r\nfour")])
    lines = to_mirc_lines(rich)
    assert lines == ["\x02\x0304one", "\x02\x0304two\x02\x03 three", "four"]
    assert to_mirc(rich) == "\n".join(lines)


def test_to_mirc_links_and_control_characters() -> None:
    rich = RichText([Span("docs", link="https://x.org"), Span(" \x02x\x01\x00\r")])
    assert to_mirc(rich) == "docs (https://x.org) x"


def test_html_to_mirc() -> None:
    html = '<b>bold</b> <font color="#ff0000">12 red</font> <code>c</code><br><i>next</i>'
    assert html_to_mirc(html) == "\x02bold\x02 \x0304\x02\x0212 red\x03 \x11c\n\x1dnext"
    assert html_to_mirc(None, "plain") == "plain"


# -- round trips ---------------------------------------------------------------------


def test_msn_html_msn_round_trip() -> None:
    original = msn("Hi there\nsecond line", "FN=Arial; EF=BU; CO=ff8000; CS=0; PF=22")
    body, html = msn_to_html(original)
    text, fmt = html_to_msn(html, body, base=original.format)
    assert (text, fmt) == (original.text, original.format)


def test_msn_mirc_msn_round_trip_for_palette_colours() -> None:
    original = msn("ok", "FN=Arial; EF=I; CO=ff; CS=0; PF=0")  # red, mIRC 4
    text, fmt = mirc_to_msn(msn_to_mirc(original), base=original.format)
    assert (text, fmt) == (original.text, original.format)


# -- properties ----------------------------------------------------------------------

# Text that survives HTML whitespace collapsing: words separated by single spaces.
WORD = st.from_regex(r"[A-Za-z0-9<>&'\"é€😀.,;:!?/=-]{1,8}", fullmatch=True)
COLOURS = st.none() | st.integers(0, 0xFFFFFF)
LINKS = st.none() | st.sampled_from(["https://example.org/a?b=1&c=2", "mailto:a@b.c"])


@st.composite
def rich_texts(draw: st.DrawFn, colours: st.SearchStrategy = COLOURS) -> RichText:
    spans: list[Span] = []
    for index in range(draw(st.integers(0, 6))):
        if index:
            spans.append(Span(draw(st.sampled_from([" ", "\n"]))))
        spans.append(
            Span(
                " ".join(draw(st.lists(WORD, min_size=1, max_size=3))),
                bold=draw(st.booleans()),
                italic=draw(st.booleans()),
                underline=draw(st.booleans()),
                strike=draw(st.booleans()),
                color=draw(colours),
                code=draw(st.booleans()),
                link=draw(LINKS),
            )
        )
    return RichText(spans)


HTML_PIECES = [
    *"<>/&;#\"'= \nabiuspre",
    *"<b> </b> <mx-reply> </mx-reply> <script> </script> <pre> </pre> <blockquote>".split(),
    *"</blockquote> <li> <ol> </ol> <br> <p> </p> &amp; &# <!-- --> <![CDATA[ <!x".split(),
    '<a href="',
    '<font color="#',
]
HTMLISH = st.lists(st.sampled_from(HTML_PIECES), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.text() | HTMLISH)
def test_no_converter_raises_on_arbitrary_input(data: str) -> None:
    for rich in (from_html(data), from_mirc(data), RichText.from_plain(data)):
        to_html(rich)
        to_msn(rich)
        for line in to_mirc_lines(rich):
            assert not re.search(r"[\r\n\x00]", line)
    html_to_msn(data, data)
    mirc_to_msn(data)
    mirc_to_html(data)
    html_to_mirc(data, data)
    msn_to_mirc(TextMessage(data, TextFormat()))
    msn_to_html(TextMessage(data, TextFormat.parse(data)))


@settings(max_examples=200, deadline=None)
@given(st.text() | HTMLISH)
@example('<A HREF="0\n0">0')  # an unsafe link shown as text kept its newline
@example('<a href="http://a\nb">0')  # a safe link kept it inside the href
def test_html_output_never_carries_a_script_tag(data: str) -> None:
    for rich in (RichText.from_plain(data), from_html(data), from_mirc(data)):
        html = to_html(rich)
        assert "<script" not in html.lower()
        assert "\n" not in html and "\r" not in html


@settings(max_examples=200, deadline=None)
@given(rich_texts())
def test_html_round_trip(rich: RichText) -> None:
    assert from_html(to_html(rich)) == rich


def test_links_are_read_as_a_browser_reads_them() -> None:
    # A browser drops tabs and newlines from a URL, so the link it would follow has none.
    assert to_html(from_html('<a href="https://exa\nmple.org/\t">x</a>')) == (
        '<a href="https://example.org/">x</a>'
    )
    assert to_html(from_html('<a href="java\nscript:alert(1)">x</a>')) == "x (javascript:alert(1))"
    assert to_html(RichText([Span("x", link=" \r\nhttps://a.org/b\nc ")])) == (
        '<a href="https://a.org/bc">x</a>'
    )


def irc_view(rich: RichText, hex_colors: bool) -> list[RichText]:
    """What IRC can show of ``rich``, line by line: links inline, colours as sent."""
    shown = []
    for span in rich.spans:
        colour = span.color
        if colour is not None and not hex_colors:
            colour = PALETTE[nearest_mirc_color(colour)]
        text = f"{span.text} ({span.link})" if span.link and span.link != span.text else span.text
        shown.append(replace(span, text=text, link=None, color=colour))
    return RichText(shown).lines()


@settings(max_examples=300, deadline=None)
@given(rich_texts(), st.booleans())
def test_mirc_lines_round_trip(rich: RichText, hex_colors: bool) -> None:
    lines = to_mirc_lines(rich, hex_colors=hex_colors)
    for line in lines:
        assert not re.search(r"[\r\n\x00]", line)
    assert [from_mirc(line) for line in lines] == irc_view(rich, hex_colors)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r")).filter(
        lambda text: text.strip()
    ),
    st.booleans(),
    st.booleans(),
    st.integers(0, 0xFFFFFF),
)
def test_msn_format_round_trips_through_richtext(
    text: str, bold: bool, strike: bool, colour: int
) -> None:
    fmt = TextFormat(font="Tahoma", bold=bold, strike=strike, color=colour, pitch="22")
    assert to_msn(from_msn(TextMessage(text, fmt)), base=fmt) == (text, fmt)
