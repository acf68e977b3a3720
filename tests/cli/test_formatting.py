"""docker-style --format templates, tables and human units (expected strings are docker's)."""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from dockyard.cli.formatting import (ago, format_output, format_table, go_sprintf, human_duration,
                                     human_size, parse, render, tabwrite, truncate_id)
from dockyard.errors import InvalidArgument

IMAGE = {
    "Id": "sha256:91843a675bcee05ce17622d9f08146a786d1a9cc4697296c79903b2b7380f084",
    "RepoTags": ["exp:latest"],
    "Os": "linux",
    "Architecture": "amd64",
    "Size": 1984238,
    "Config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Entrypoint": None,
               "Labels": {"anchors.tar": "b135c3f5401085b3", "b": "2"}},
    "RootFS": {"Type": "layers", "Layers": ["sha256:b135c3f5401085b39f", "sha256:972218c7eb617e8"]},
}


def r(template: str, obj=IMAGE) -> str:  # noqa: ANN001
    return render(template, obj)


def error_of(template: str, obj=IMAGE) -> str:  # noqa: ANN001
    with pytest.raises(InvalidArgument) as exc:
        render(template, obj)
    assert "\n" not in str(exc.value)
    return str(exc.value)


# -- fields and values ------------------------------------------------------------------------
@pytest.mark.parametrize("template, expected", [
    ("{{.Os}}", "linux"),
    ("{{.Config.Cmd}}", "[sh]"),
    ("{{.Size}}", "1984238"),
    ("{{.Config.Labels}}", "map[anchors.tar:b135c3f5401085b3 b:2]"),
    ("{{.RootFS}}", "{layers [sha256:b135c3f5401085b39f sha256:972218c7eb617e8]}"),  # a struct, as Go prints one
    ("{{.Nope}}", "<no value>"),
    ("{{.Nope.Deeper}}", "<no value>"),
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{.}}", "map[a:1]"),
    ("{{$.Os}}-{{.Architecture}}", "linux-amd64"),
    ("{{(index .RootFS.Layers 1)}}", "sha256:972218c7eb617e8"),
    ("{{(.RootFS).Type}}", "layers"),
    ("{{true}} {{false}} {{1}} {{-2}} {{3.0}} {{1e6}} {{0x1F}} {{1_000}} {{'a'}}", "true false 1 -2 3 1e+06 31 1000 97"),
    ('{{"a\\tb\\u00e9"}}|{{`raw\\n`}}', "a\tbé|raw\\n"),
])
def test_fields_and_literals(template, expected):
    obj = {"a": 1} if template == "{{.}}" else IMAGE
    assert r(template, obj) == expected


def test_objects_with_attributes_and_methods():
    class Ctx:
        ID = "abc"

        def Label(self, name: str) -> str:  # noqa: N802 - a Go method name
            return {"com.x": "1"}.get(name, "")

    assert r('{{.ID}} {{.Label "com.x"}}', Ctx()) == "abc 1"
    assert r('{{.Label "com.x" | printf "<%s>"}}', {"Label": lambda name: name.upper()}) == "<COM.X>"


def test_missing_key_can_be_an_error():
    with pytest.raises(InvalidArgument, match='map has no entry for key "Nope"'):
        render("{{.Nope}}", IMAGE, missing_error=True)


# -- functions --------------------------------------------------------------------------------
@pytest.mark.parametrize("template, expected", [
    ("{{json .Config.Labels}}", '{"anchors.tar":"b135c3f5401085b3","b":"2"}'),
    ("{{json .RootFS}}", '{"Type":"layers","Layers":["sha256:b135c3f5401085b39f","sha256:972218c7eb617e8"]}'),
    ("{{.Config.Cmd | json}}", '["sh"]'),
    ('{{json "<&>"}}', '"<&>"'),
    ("{{json .Config.Entrypoint}}", "null"),
    ("{{json .Nope}}", "null"),
    ("{{json 1.5}}{{json 1e6}}{{json 1e21}}{{json 0.0000001}}{{json 123456789.0}}", "1.510000001e+211e-7123456789"),
    ('{{index .Config.Labels "anchors.tar"}}', "b135c3f5401085b3"),
    ('{{index .Config.Labels "missing"}}', ""),
    ("{{index .RootFS.Layers 0}}", "sha256:b135c3f5401085b39f"),
    ('{{index . "Config" "Cmd" 0}}', "sh"),
    ("{{len .Config.Env}} {{len .Config.Labels}} {{len \"héllo\"}}", "1 2 6"),
    ('{{join .Config.Env ","}}|{{join .RootFS.Layers ", "}}', "PATH=/bin|sha256:b135c3f5401085b39f, sha256:972218c7eb617e8"),
    ('{{index (split "a,b,c" ",") 1}} {{len (split "abc" "")}}', "b 3"),
    ('{{lower "ABC"}} {{upper .Os}} {{title "hello wORLD foo-bar"}}', "abc LINUX Hello WORLD Foo-Bar"),
    ('{{truncate "abcdef" 3}}|{{truncate "ab" 3}}|{{pad "x" 1 2}}|{{pad "" 1 2}}', "abc|ab| x  |"),
    ('{{slice "abcdef" 1 3}} {{slice .RootFS.Layers 1}}', "bc [sha256:972218c7eb617e8]"),
    ('{{print 1 2 "a" "b" 3}}|{{println "x" 1}}', "1 2ab3|x 1\n"),
    ('{{html "<a href=\'x\'>&"}} {{js "it\'s <b>"}} {{urlquery "a b&c"}}',
     "&lt;a href=&#39;x&#39;&gt;&amp; it\\'s \\u003Cb\\u003E a+b%26c"),
])
def test_functions(template, expected):
    assert r(template) == expected


@pytest.mark.parametrize("fmt, args, expected", [
    # recorded from docker's --format printf
    ("%d|%5d|%-5d|%05d|%x|%X|%o|%b|%c|%q|%v|%s|%t|%.3s|%8.3f|%e|%g|%G|%+d|%%|%T",
     [42, 42, 42, 42, 255, 255, 8, 5, 65, 'a"b', {"anchors.tar": "b135c3f5401085b3"}, "str", True, "abcdef",
      3.14159, 1234.5678, 0.000012345, 1e21, 5, "x"],
     '42|   42|42   |00042|ff|FF|10|101|A|"a\\"b"|map[anchors.tar:b135c3f5401085b3]|str|true|abc|   3.142|'
     '1.234568e+03|1.2345e-05|1E+21|+5|%|string'),
    ("%d %s", ["x", 5], "%!d(string=x) %!s(int=5)"),
    ("%d", [], "%!d(MISSING)"),
    ("%d", [1, 2], "1%!(EXTRA int=2)"),
    ("%v %v %v %v %v %v %v %v %v", [1.0, 1e6, 123456.0, 1234567.0, 123456789.0, 0.0001, 0.00001, 100000.0, 1.5e300],
     "1 1e+06 123456 1.234567e+06 1.23456789e+08 0.0001 1e-05 100000 1.5e+300"),
    ("%-8s|%8s|%x", ["ab", "cd", "hi"], "ab      |      cd|6869"),
])
def test_printf_matches_go(fmt, args, expected):
    assert go_sprintf(fmt, args) == expected


def test_printf_in_a_template():
    assert r('{{printf "%s has %d layers" .Os (len .RootFS.Layers)}}') == "linux has 2 layers"
    assert r('{{.Size | printf "%v bytes"}}') == "1984238 bytes"


# -- control structures -----------------------------------------------------------------------
@pytest.mark.parametrize("template, expected", [
    ('{{if eq .Os "linux"}}L{{else}}X{{end}}', "L"),
    ('{{if eq .Os "windows"}}W{{else if eq .Os "linux"}}L{{else}}X{{end}}', "L"),
    ('{{if .Nope}}yes{{else}}no{{end}}', "no"),
    ('{{if and .Os (gt .Size 1000)}}big{{end}}', "big"),
    ('{{if or .Nope .Os}}{{.Os}}{{end}}', "linux"),
    ('{{and 1 0 2}} {{or 0 "" "z"}} {{not 0}} {{not .Os}}', "0 z true false"),
    ('{{range $i, $e := .RootFS.Layers}}{{$i}}={{slice $e 0 12}} {{end}}', "0=sha256:b135c 1=sha256:97221 "),
    ('{{range .Config.Labels}}[{{.}}]{{end}}', "[b135c3f5401085b3][2]"),
    ('{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}', "anchors.tar=b135c3f5401085b3;b=2;"),
    ('{{range .Nope}}x{{else}}empty{{end}}', "empty"),
    ('{{range $e := .RootFS.Layers}}{{if eq $e "sha256:b135c3f5401085b39f"}}{{continue}}{{end}}{{$e}}{{break}}{{end}}',
     "sha256:972218c7eb617e8"),
    ('{{with .Config}}{{.Cmd}} {{$.Os}}{{end}}', "[sh] linux"),
    ('{{with .Nope}}x{{else}}none{{end}}', "none"),
    ('{{with $c := .Config.Cmd}}{{index $c 0}}{{end}}', "sh"),
    ('{{$v := .Os}}{{$v}} {{$v = "other"}}{{$v}}', "linux other"),
    ('{{range .RootFS.Layers}}{{$n := .}}{{end}}{{.Os}}', "linux"),
    ('{{eq .Size 1984238}} {{ne .Os "x"}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}} {{eq .Os "a" "linux"}}',
     "true true true true true false true"),
    ('{{eq .Size "x"}} {{eq .Nope "x"}} {{eq .Nope .Nope2}}', "false false true"),
])
def test_control_structures(template, expected):
    assert r(template) == expected


def test_trim_markers_and_comments():
    assert r("{{ .Os -}}   {{- .Architecture }} {{/* c */}}x") == "linuxamd64 x"
    assert r("a  {{- /* gone */ -}}  b\n{{- .Os}}") == "ablinux"
    assert r("{{.Os}}\n  {{- .Architecture}}") == "linuxamd64"
    assert r("x {{-3}}") == "x -3"  # "-3" is a number, not a trim marker


# -- errors: docker's wording, one line, InvalidArgument --------------------------------------
@pytest.mark.parametrize("template, message", [
    ("{{.Foo", "template parsing error: template: :1: unclosed action"),
    ("{{foo}}", 'template parsing error: template: :1: function "foo" not defined'),
    ("{{end}}", "template parsing error: template: :1: unexpected {{end}}"),
    ("{{if .Os}}x", "template parsing error: template: :1: unexpected EOF"),
    ("{{else}}", "template parsing error: template: :1: unexpected {{else}}"),
    ("{{$x}}", 'template parsing error: template: :1: undefined variable "$x"'),
    ('{{"abc}}', "template parsing error: template: :1: unterminated quoted string"),
    ("line\n{{.A | }}", "template parsing error: template: :2: missing command"),
    ("{{range}}{{end}}", "template parsing error: template: :1: missing value for range"),
    ("{{break}}", "template parsing error: template: :1: {{break}} outside {{range}}"),
    ("{{.A @}}", "template parsing error: template: :1: unrecognized character in action: U+0040 '@'"),
    ("{{.RootFS.Layers.X}}", 'template parsing error: template: :1:9: executing "" at <.RootFS.Layers.X>: '
                             "can't evaluate field X in type []interface {}"),
    ("{{.Config.Entrypoint.X}}", 'template parsing error: template: :1:9: executing "" at <.Config.Entrypoint.X>: '
                                 "nil pointer evaluating interface {}.X"),
    ("{{index .Config.Env 5}}", 'template parsing error: template: :1:2: executing "" at <index .Config.Env 5>: '
                                "error calling index: index out of range: 5"),
    ("{{lt 1 2.5}}", 'template parsing error: template: :1:2: executing "" at <lt 1 2.5>: '
                     "error calling lt: incompatible types for comparison"),
    ("{{len .Size}}", 'template parsing error: template: :1:2: executing "" at <len .Size>: '
                      "error calling len: len of type int"),
    ('{{join .Os ","}}', 'template parsing error: template: :1:2: executing "" at <join .Os ",">: '
                         "wrong type for value; expected []string; got string"),
    ('{{.Os "arg"}}', 'template parsing error: template: :1:2: executing "" at <.Os>: '
                      "Os is not a method but has arguments"),
    ("{{upper}}", 'template parsing error: template: :1:2: executing "" at <upper>: '
                  "wrong number of args for upper: want 1 got 0"),
])
def test_errors_read_like_docker(template, message):
    assert error_of(template) == message


# -- output formats for ls commands -----------------------------------------------------------
ROWS = [
    {"Repository": "exp-e15-bk", "Tag": "latest", "ID": "91843a675bce", "Size": "1.98MB", "Digest": "<none>"},
    {"Repository": "busybox", "Tag": "1.36", "ID": "f3dd7b521082", "Size": "4.26MB", "Digest": "<none>"},
]
COLUMNS = [("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"), ("SIZE", "Size")]
HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Size": "SIZE", "Digest": "DIGEST",
           "CreatedSince": "CREATED"}


def test_default_table_is_docker_aligned():
    expected = ("REPOSITORY   TAG       IMAGE ID       SIZE\n"
                "exp-e15-bk   latest    91843a675bce   1.98MB\n"
                "busybox      1.36      f3dd7b521082   4.26MB\n")
    assert format_output(ROWS, None, COLUMNS, HEADERS) == expected
    assert format_output(ROWS, "table", COLUMNS, HEADERS) == expected
    assert format_table(ROWS, COLUMNS) == expected
    assert format_output([], None, COLUMNS, HEADERS) == "REPOSITORY   TAG       IMAGE ID   SIZE\n"


def test_table_template_header_comes_from_the_header_map():
    out = format_output(ROWS, 'table {{.ID}}\\t{{json .Tag}}\\t{{upper .Tag}}\\t{{.Size | printf "%s!"}}', COLUMNS, HEADERS)
    # as docker prints it: json/upper return the header unchanged, printf still applies
    assert out == ("IMAGE ID       TAG        TAG       SIZE!\n"
                   "91843a675bce   \"latest\"   LATEST    1.98MB!\n"
                   "f3dd7b521082   \"1.36\"     1.36      4.26MB!\n")
    # a key the header map lacks gets a header made from its name; the column is as wide as
    # its widest cell ("exp-e15-bk:latest") plus 3
    assert format_output(ROWS, "table {{.Repository}}:{{.Tag}}\t{{.CreatedAt}}", COLUMNS, HEADERS).splitlines()[0] \
        == "REPOSITORY:TAG      CREATED AT"


def test_plain_template_and_json_formats():
    assert format_output(ROWS, "{{.Repository}}\\t{{.Tag}}", COLUMNS, HEADERS) == "exp-e15-bk\tlatest\nbusybox\t1.36\n"
    assert format_output(ROWS, "  {{.ID}}  ", COLUMNS, HEADERS) == "91843a675bce\nf3dd7b521082\n"
    lines = format_output(ROWS, "json", COLUMNS, HEADERS).splitlines()
    assert lines[0] == ('{"Digest":"\\u003cnone\\u003e","ID":"91843a675bce","Repository":"exp-e15-bk",'
                        '"Size":"1.98MB","Tag":"latest"}')  # docker escapes HTML in whole-row JSON
    assert [json.loads(line)["Tag"] for line in lines] == ["latest", "1.36"]
    assert format_output(ROWS, "{{json .}}", COLUMNS, HEADERS).splitlines() == lines
    assert format_output(ROWS, "{{json .Digest}}", COLUMNS, HEADERS).splitlines()[0] == '"<none>"'
    assert format_output([], "json", COLUMNS, HEADERS) == ""
    with pytest.raises(InvalidArgument, match="unclosed action"):
        format_output(ROWS, "table {{.ID", COLUMNS, HEADERS)


def test_tabwriter_follows_go():
    # column blocks end at a line with fewer cells; a line's last cell is never padded
    text = "a\tbb\tc\nxxxxxxxxxxxxx\tb\nshort\n1\t2\t3\t4\n"
    assert tabwrite(text) == ("a               bb        c\n"
                              "xxxxxxxxxxxxx   b\n"
                              "short\n"
                              "1         2         3         4\n")
    assert tabwrite("") == ""
    assert tabwrite("h1\th2\n") == "h1        h2\n"


# -- human units ------------------------------------------------------------------------------
@pytest.mark.parametrize("size, expected", [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (4260, "4.26kB"), (1984238, "1.98MB"), (1870000, "1.87MB"),
    (999999, "1e+03kB"),  # docker's own rounding quirk, kept for identical output
    (123_456_789_012, "123GB"), (10**27, "1e+03YB"),
])
def test_human_size(size, expected):
    assert human_size(size) == expected


def test_human_size_binary():
    assert human_size(16_777_216_000, binary=True) == "15.62GiB"
    assert human_size(1024, binary=True) == "1KiB"


@pytest.mark.parametrize("seconds, expected", [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5399, "About an hour"), (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"),
    (14 * 86400, "2 weeks"), (60 * 86400, "2 months"), (730 * 86400, "2 years"),
])
def test_human_duration(seconds, expected):
    assert human_duration(seconds) == expected


def test_ago_and_truncate_id():
    now = time.time()
    assert ago(now - 7200, now=now) == "2 hours ago"
    assert ago(now) == "Less than a second ago"
    assert truncate_id("sha256:91843a675bcee05ce17622d9f") == "91843a675bce"
    assert truncate_id("abc") == "abc"


def test_template_is_parsed_once_and_reused():
    tmpl = parse("{{.A}}-{{len .B}}")
    assert [tmpl.execute({"A": i, "B": [0] * i}) for i in range(3)] == ["0-0", "1-1", "2-2"]


# -- side by side with the docker CLI ---------------------------------------------------------
def _docker_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="module")
def docker_image(tmp_path_factory, busybox_tar):
    if not _docker_ready():
        pytest.skip("docker CLI or daemon not available")
    name = f"dockyard-format-test:{int(time.time() * 1000)}"
    subprocess.run(["docker", "import", "--change", "LABEL com.example.a=1", "--change", "LABEL b=two",
                    "--change", 'CMD ["sh"]', str(busybox_tar), name], check=True, capture_output=True, timeout=120)
    try:
        yield name
    finally:
        subprocess.run(["docker", "rmi", "-f", name], capture_output=True, timeout=120)


INSPECT_TEMPLATES = [
    "{{.Os}}/{{.Architecture}} {{.Size}}",
    "{{json .Config.Labels}}|{{.Config.Labels}}|{{index .Config.Labels \"b\"}}",
    "{{json .RootFS}}|{{len .RootFS.Layers}}|{{.Config.Cmd}}",
    '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}{{if eq .Os "linux"}} linux{{end}}',
    '{{printf "%s %d %q %-6s|" .Os .Size .Architecture .Os}}{{upper .Os}} {{truncate .Architecture 2}}',
    "{{with .Config}}{{join .Cmd \",\"}}{{end}} {{title .Os}} {{.RootFS.Type | printf \"%5s\"}}",
]


@pytest.mark.interop
def test_templates_render_as_docker_inspect_does(docker_image):
    raw = subprocess.run(["docker", "image", "inspect", docker_image], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    obj = json.loads(raw)[0]
    for template in INSPECT_TEMPLATES:
        theirs = subprocess.run(["docker", "image", "inspect", "--format", template, docker_image], check=True,
                                capture_output=True, text=True, timeout=60).stdout
        assert render(template, obj) + "\n" == theirs, template


LS_FORMATS = [
    "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.Size}}",
    "table {{.ID}}\\t{{json .Tag}}\\t{{upper .Repository}}",
    "{{.Repository}}:{{.Tag}}\\t{{.Size}}",
    "table {{.Repository}}:{{.Tag}}",
    "json",
]


@pytest.mark.interop
def test_ls_formats_match_docker_images(docker_image):
    repo = docker_image.split(":")[0]
    base = ["docker", "images", "--filter", f"reference={repo}"]
    rows = [json.loads(line) for line in subprocess.run([*base, "--format", "json"], check=True,
                                                        capture_output=True, text=True, timeout=60).stdout.splitlines()]
    assert rows
    headers = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Size": "SIZE", "Digest": "DIGEST",
               "CreatedSince": "CREATED", "CreatedAt": "CREATED AT"}
    for fmt in LS_FORMATS:
        theirs = subprocess.run([*base, "--format", fmt], check=True, capture_output=True, text=True,
                                timeout=60).stdout
        ours = format_output(rows, fmt, COLUMNS, headers)
        if fmt == "json":  # CreatedSince ("1 second ago") moves on between the two docker calls
            ours, theirs = ([{k: v for k, v in json.loads(line).items() if k != "CreatedSince"}
                             for line in text.splitlines()] for text in (ours, theirs))
        assert ours == theirs, fmt
