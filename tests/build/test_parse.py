"""Parsing: docker's word expansion rules, directives, errors that name file/line/instruction,
flags, ARG scoping and the stage graph."""
from __future__ import annotations

import pytest

from dockyard.build import dockerfile as df
from dockyard.build import instructions as ins
from dockyard.build import stages as st
from dockyard.build.errors import BuildError, DockerfileSyntaxError
from dockyard.build.shell_lex import ShellLex, ShellLexError

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어"}

# (word, expected) from BuildKit's shell lexer test table (envVarTest); None = an error
WORDS = [
    ("hello", "hello"), ("he'll'o", "hello"), ("he'llo", None), ("he\\'llo", "he'llo"),
    ("he\\\\'llo", None), ("abc\\tdef", "abctdef"), ('"abc\\tdef"', "abc\\tdef"),
    ('"abc\\\\tdef"', "abc\\tdef"), ("'abc\\tdef'", "abc\\tdef"), ("hello\\", "hello"),
    ("hello\\\\", "hello\\"), ('"hello', None), ('"hello\\"', None), ('"hel\'lo"', "hel'lo"),
    ("'hello", None), ("'hello\\'", "hello\\"), ("'hello\\there'", "hello\\there"),
    ('"\'\'"', "''"), ("$.", "$."), ("he$1x", "hex"), ("he$.x", "he$.x"), ("he$pwd.", "he."),
    ("he$PWD", "he/home"), ("he\\$PWD", "he$PWD"), ("he\\\\$PWD", "he\\/home"), ('"he\\$PWD"', "he$PWD"),
    ('"he\\\\$PWD"', "he\\/home"), ("\\${}", "${}"), ("\\${}aaa", "${}aaa"), ("${}", None),
    ("he${}xx", None), ("he${hi}", "he"), ("he${hi}xx", "hexx"), ("he${PWD}", "he/home"),
    ("he${.}", None), ("he${XXX:-000}xx", "he000xx"), ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"), ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"), ("he${XXX:YYY}", None), ("he${XXX:+${PWD}}xx", "hexx"),
    ("he${PWD:+${XXX}}xx", "hexx"), ("he${PWD:+${SHELL}}xx", "hebashxx"), ("he${XXX:+000}xx", "hexx"),
    ("he${PWD:+000}xx", "he000xx"), ("'he${XX}'", "he${XX}"), ('"he${PWD}"', "he/home"),
    ('"he\'$PWD\'"', "he'/home'"), ('"$PWD"', "/home"), ("'$PWD'", "$PWD"), ("'\\$PWD'", "\\$PWD"),
    ("'\"hello\"'", '"hello"'), ("he${PWD", None), ("he${PWD:=000}xx", None),
    ("he${PWD:+${PWD}:}xx", "he/home:xx"), ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"),
    ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"), ("안녕하세요", "안녕하세요"), ("안'녕'하세요", "안녕하세요"),
    ("안'녕하세요", None), ("$KOREAN", "한국어"), ("안녕$KOREAN", "안녕한국어"), ("${{aaa}", None),
    ("${aaa}}", "}"), ("${aaa", None), ("${aaa:-bbb}}", "bbb}"), ("${aaa:-${bbb:-ccc}}}", "ccc}"),
    # newer BuildKit forms
    ("${XXX-def}", "def"), ("${PWD+set}", "set"), ("${XXX+set}", ""),
    ("${PWD#/h}", "ome"), ("${PWD%me}", "/ho"), ("${PWD/o/0}", "/h0me"), ("${SHELL//a/A}", "bAsh"),
]


@pytest.mark.parametrize("word,expected", WORDS)
def test_shell_word(word, expected):
    lex = ShellLex()
    if expected is None:
        with pytest.raises(ShellLexError):
            lex.process_word(word, ENV)
    else:
        assert lex.process_word(word, ENV) == expected


def test_shell_words_split_after_expansion():
    lex = ShellLex()
    env = {"A": "x y", "E": ""}
    assert lex.process_words("$A 'b c' \"\" d", env) == ["x", "y", "b c", "d"]  # an empty quoted word vanishes, as in docker
    assert lex.process_words("80 ${A}", env) == ["80", "x", "y"]


def test_unset_error_messages():
    lex = ShellLex()
    with pytest.raises(ShellLexError, match="X: is not allowed to be unset"):
        lex.process_word("${X?}", {})
    with pytest.raises(ShellLexError, match="X: needed"):
        lex.process_word("${X:?needed}", {"X": ""})


def test_backtick_escape():
    lex = ShellLex(escape="`")
    assert lex.process_word("C:\\dir `$X", {"X": "1"}) == "C:\\dir $X"


def test_directives():
    d = df.parse_directives("# syntax=docker/dockerfile:1\n#escape=`\n# check=skip=all\nFROM x\n")
    assert (d.syntax, d.escape, d.check) == ("docker/dockerfile:1", "`", "skip=all")
    # only at the top: after an instruction or a plain comment they are comments
    assert df.parse_directives("# hello\n# escape=`\n").escape == "\\"
    with pytest.raises(DockerfileSyntaxError, match="only one escape"):
        df.parse_directives("# escape=`\n# escape=\\\n")
    with pytest.raises(DockerfileSyntaxError, match="invalid escape token"):
        df.parse_directives("# escape=x\n")


def test_continuations_comments_heredocs():
    p = df.parse(b"FROM x\nRUN a \\\n  # note\n  b\nCOPY <<-EOT <<\"raw\" /d/\n\tone $X\nEOT\ntwo $X\nraw\n")
    run, copy = p.nodes[1], p.nodes[2]
    assert run.args == ("a   b",) and (run.line, run.end_line) == (2, 4)
    names = [(h.name, h.chomp, h.expand) for h in copy.heredocs]
    assert names == [("EOT", True, True), ("raw", False, False)]


@pytest.mark.parametrize("text,line,fragment", [
    ("FROM busybox\nRUN true\nENV A\n", 3, "ENV must have two arguments"),
    ("FROM busybox\nFROBNICATE x\n", 2, "unknown instruction: FROBNICATE"),
    ("FROM busybox\nLABEL a=b c\n", 2, "can't find = in \"c\""),
    ("FROM busybox\nCOPY --frm=x a b\n", 2, "Unknown flag: frm"),
    ("FROM busybox\nCOPY a\n", 2, "COPY requires at least two arguments"),
    ("FROM busybox AS 1st\n", 1, "invalid name for build stage"),
    ("FROM busybox\nHEALTHCHECK --interval=1x CMD true\n", 2, "invalid duration"),
    ("FROM busybox\nSHELL sh -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM busybox\nONBUILD FROM x\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
])
def test_syntax_errors_name_file_line_and_instruction(text, line, fragment):
    with pytest.raises(DockerfileSyntaxError) as info:
        parsed = df.parse(text.encode(), "app.Dockerfile")
        st.make_plan(parsed, {}, st.Platform())
    err = info.value
    assert fragment in err.message
    assert err.message.startswith(f"dockerfile parse error line {line}: ")  # docker's words
    assert (err.filename, err.line) == ("app.Dockerfile", line)
    assert err.instruction.split()[0] == text.splitlines()[line - 1].split()[0]


def test_instruction_before_from():
    with pytest.raises(BuildError, match="^no build stage in current context$"):
        st.make_plan(df.parse(b"RUN true\n", "app.Dockerfile"), {}, st.Platform())


def test_flags():
    node = df.parse(b"FROM x\nCOPY --from=a --chown=1:2 --chmod=755 --link s d\n").nodes[1]
    c = ins.from_node(node)
    assert (c.from_, c.chown, c.chmod, c.link, c.sources, c.dest) == ("a", "1:2", "755", True, ["s"], "d")
    node = df.parse(b"FROM x\nCOPY --from=a --from=b s d\n").nodes[1]
    with pytest.raises(DockerfileSyntaxError, match="Duplicate flag specified: from"):
        ins.from_node(node)
    node = df.parse(b"FROM x\nRUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none true\n").nodes[1]
    r = ins.from_node(node)
    assert r.mounts == ["type=cache,target=/c", "type=tmpfs,target=/t"] and r.network == "none"


def _plan(text: str, args: dict | None = None, target: str | None = None):
    plan = st.make_plan(df.parse(text.encode()), args or {}, st.Platform())
    return plan, st.needed_stages(plan, st.select_target(plan, target))


def test_global_args_expand_from_lines():
    plan, _ = _plan("ARG V=1.0\nARG IMG=busybox:${V}\nFROM ${IMG} AS a\nFROM $IMG\n", {"V": "2.0"})
    assert [s.base for s in plan.stages] == ["busybox:2.0", "busybox:2.0"]
    assert plan.meta_values["TARGETARCH"] and plan.meta_values["TARGETOS"] == "linux"
    with pytest.raises(BuildError, match="base name .* should not be blank"):
        _plan("ARG IMG\nFROM $IMG\n")


def test_stage_graph_and_target():
    text = ("FROM busybox AS a\nFROM busybox AS b\nFROM a AS c\nCOPY --from=b /x /x\n"
            "FROM busybox AS unused\nFROM c\nRUN --mount=type=bind,from=a,target=/m true\n")
    plan, needed = _plan(text)
    assert needed == [0, 1, 2, 4]  # "unused" is never built
    assert st.dependencies(plan, plan.stages[2]) == {0, 1}
    _, needed = _plan(text, target="B")  # stage names are case-insensitive
    assert needed == [1]
    with pytest.raises(BuildError, match="target stage nope could not be found"):
        _plan(text, target="nope")
    with pytest.raises(BuildError, match="refers to current or future build stage"):
        _plan("FROM busybox\nCOPY --from=0 /a /b\n")
    with pytest.raises(DockerfileSyntaxError, match="duplicate stage name"):
        _plan("FROM busybox AS a\nFROM busybox AS a\n")
