"""The engine's pure parts: docker's formats, parsers, back-off and health state machine."""
from __future__ import annotations

import json

import pytest

from dockyard.engine import timeutil
from dockyard.engine.creation import entrypoint_and_args, merge_image_config
from dockyard.engine.health import HealthState, effective_config
from dockyard.engine.logs import LineSplitter, encode_entry, parse_size
from dockyard.engine.options import RunOptions, build_body, parse_cpus, parse_env, parse_restart
from dockyard.engine.restart import RestartManager
from dockyard.engine.terminal import DetachScanner, parse_detach_keys
from dockyard.engine.view import status_string
from dockyard.errors import InvalidArgument


def test_rfc3339nano_like_go():
    assert timeutil.rfc3339nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert timeutil.rfc3339nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert timeutil.rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert timeutil.rfc3339nano_fixed(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.120000000Z"
    assert timeutil.parse_rfc3339("2023-11-14T22:13:20.12Z") == 1_700_000_000_120_000_000
    assert timeutil.parse_rfc3339("2023-11-14T23:13:20+01:00") == 1_700_000_000_000_000_000


def test_since_values():
    now = 1_700_000_000 * 10**9
    assert timeutil.parse_timestamp("10m", now) == now - 600 * 10**9
    assert timeutil.parse_timestamp("1h30m", now) == now - 5400 * 10**9
    assert timeutil.parse_timestamp("1700000000.5", now) == 1_700_000_000_500_000_000
    with pytest.raises(ValueError):
        timeutil.parse_timestamp("soon", now)


@pytest.mark.parametrize("secs,text", [(0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"),
                                       (61, "About a minute"), (3000, "50 minutes"), (3600, "About an hour"),
                                       (7200, "2 hours"), (3 * 86400, "3 days"), (20 * 86400, "2 weeks")])
def test_human_duration(secs, text):
    from dockyard.cli.formatting import human_duration

    assert human_duration(secs) == text


def test_status_strings():
    now = 1_700_000_100.0
    started = timeutil.rfc3339nano(1_700_000_000 * 10**9)
    assert status_string({"Status": "created", "StartedAt": "0001-01-01T00:00:00Z"}, now) == "Created"
    assert status_string({"Status": "running", "Running": True, "StartedAt": started}, now) == "Up About a minute"
    assert status_string({"Status": "paused", "Running": True, "Paused": True, "StartedAt": started}, now) == \
        "Up About a minute (Paused)"
    h = {"Status": "running", "Running": True, "StartedAt": started, "Health": {"Status": "starting"}}
    assert status_string(h, now) == "Up About a minute (health: starting)"
    h["Health"]["Status"] = "healthy"
    assert status_string(h, now) == "Up About a minute (healthy)"
    ex = {"Status": "exited", "ExitCode": 137, "StartedAt": started,
          "FinishedAt": timeutil.rfc3339nano(1_700_000_095 * 10**9)}
    assert status_string(ex, now) == "Exited (137) 5 seconds ago"
    rs = {"Status": "restarting", "Running": True, "Restarting": True, "ExitCode": 1, "StartedAt": started,
          "FinishedAt": timeutil.rfc3339nano(1_700_000_098 * 10**9)}
    assert status_string(rs, now) == "Restarting (1) 2 seconds ago"


def test_json_file_records_are_dockers():
    rec = encode_entry(b"a <b> & \"c\"\n", "stdout", 1_700_000_000_000_000_001)
    assert rec == (b'{"log":"a \\u003cb\\u003e \\u0026 \\"c\\"\\n","stream":"stdout",'
                   b'"time":"2023-11-14T22:13:20.000000001Z"}\n')
    assert json.loads(encode_entry(b"\xff\n", "stderr", 0))["log"] == "\ufffd\n"


def test_line_splitting_like_dockers_copier():
    s = LineSplitter()
    assert s.feed(b"a\nb") == [b"a\n"]
    assert s.feed(b"c\n\n") == [b"bc\n", b"\n"]
    assert s.feed(b"x" * 20000) == [b"x" * 16384]
    assert s.flush() == [b"x" * (20000 - 16384)]
    assert s.flush() == []


def test_sizes_and_cpus():
    assert parse_size("10m") == 10 * 1024 * 1024
    assert parse_size("1k") == 1024 and parse_size("512") == 512 and parse_size("1.5g") == 1536 * 1024 * 1024
    assert parse_size("2MiB") == 2 * 1024 * 1024
    with pytest.raises(ValueError, match="invalid suffix: 'x'"):
        parse_size("1x")
    assert parse_cpus("1.5") == 1_500_000_000 and parse_cpus(".25") == 250_000_000
    with pytest.raises(InvalidArgument):
        parse_cpus("abc")


def test_restart_policy_parsing():
    assert parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert parse_restart("always") == {"Name": "always", "MaximumRetryCount": 0}
    with pytest.raises(InvalidArgument, match="must be an integer"):
        parse_restart("on-failure:x")


def test_env_rules(monkeypatch, tmp_path):
    monkeypatch.setenv("FROM_HOST", "h")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    f = tmp_path / "e"
    f.write_text("# c\n\nA=1\nFROM_HOST\n")
    assert parse_env(["B=2", "UNSET_ONE", "A=3"], [str(f)]) == ["A=1", "FROM_HOST=h", "B=2", "A=3"]


def test_body_attach_defaults():
    fg = build_body(RunOptions(image="x", command=["sh"], interactive=True, tty=True))
    assert (fg["AttachStdin"], fg["AttachStdout"], fg["OpenStdin"], fg["StdinOnce"], fg["Tty"]) == \
        (True, True, True, True, True)
    bg = build_body(RunOptions(image="x", detach=True, interactive=True))
    assert (bg["AttachStdin"], bg["AttachStdout"], bg["OpenStdin"], bg["StdinOnce"]) == (False, False, True, False)
    hc = build_body(RunOptions(image="x", health_cmd="true", health_interval="1s", health_retries="2"))
    assert hc["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000, "Retries": 2}
    with pytest.raises(InvalidArgument, match="conflicts"):
        build_body(RunOptions(image="x", no_healthcheck=True, health_cmd="true"))


def test_merge_with_image_config():
    image = {"Env": ["PATH=/bin", "A=img"], "Cmd": ["sh"], "Entrypoint": None, "WorkingDir": "/w",
             "Labels": {"l": "img", "m": "img"}, "StopSignal": "SIGQUIT", "User": "daemon",
             "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5}}
    cfg = merge_image_config({"Env": ["A=user"], "Labels": {"l": "user"}, "Healthcheck": {"Retries": 7}}, image)
    assert cfg["Env"] == ["A=user", "PATH=/bin"]
    assert cfg["Labels"] == {"l": "user", "m": "img"}
    assert (cfg["Cmd"], cfg["WorkingDir"], cfg["StopSignal"], cfg["User"]) == (["sh"], "/w", "SIGQUIT", "daemon")
    assert cfg["Healthcheck"] == {"Retries": 7, "Test": ["CMD", "true"], "Interval": 5}
    ep = merge_image_config({"Entrypoint": ["echo"]}, image)
    assert not ep.get("Cmd") and entrypoint_and_args(ep) == ("echo", [])
    assert entrypoint_and_args({"Entrypoint": [""], "Cmd": ["ls", "-l"]}) == ("ls", ["-l"])
    with pytest.raises(InvalidArgument, match="No command specified"):
        entrypoint_and_args({"Entrypoint": [""], "Cmd": None})


def test_backoff_doubles_and_resets():
    rm = RestartManager("always")
    delays = [rm.should_restart(0, False, 0.5)[1] for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8] and delays[-1] == 60.0
    assert rm.should_restart(0, False, 11.0) == (True, 0.1)  # ran 10 s: back to 100 ms
    assert rm.should_restart(0, True, 1.0) == (False, 0.0)  # stopped by hand
    of = RestartManager("on-failure", maximum_retry_count=2)
    assert [of.should_restart(1, False, 0)[0] for _ in range(3)] == [True, True, False]
    assert RestartManager("on-failure").should_restart(0, False, 0)[0] is False
    assert RestartManager("no").should_restart(1, False, 0)[0] is False


def test_health_state_machine():
    cfg = effective_config({"Test": ["CMD-SHELL", "true"], "Retries": 2, "StartPeriod": 10_000_000_000})
    assert cfg["argv"] == ["/bin/sh", "-c", "true"] and cfg["interval"] == 30.0
    h = HealthState()
    h.record("s", "e", 1, "", since_start=1.0, cfg=cfg)  # inside the start period: not counted
    assert (h.status, h.failing_streak) == ("starting", 0)
    h.record("s", "e", 1, "", since_start=11.0, cfg=cfg)
    h.record("s", "e", 1, "", since_start=12.0, cfg=cfg)
    assert (h.status, h.failing_streak) == ("unhealthy", 2)
    h.record("s", "e", 0, "ok", since_start=13.0, cfg=cfg)
    assert (h.status, h.failing_streak) == ("healthy", 0)
    for _ in range(10):
        h.record("s", "e", 0, "", since_start=20.0, cfg=cfg)
    assert len(h.log) == 5
    assert effective_config({"Test": ["NONE"]}) is None


def test_detach_keys():
    assert parse_detach_keys(None) == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    with pytest.raises(InvalidArgument):
        parse_detach_keys("ctrl-ab")
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"ab\x10") == (b"ab", False)
    assert s.feed(b"c") == (b"\x10c", False)  # a broken sequence is passed on
    assert s.feed(b"\x10\x11rest") == (b"", True)


def test_cp_argument_split():
    from dockyard.engine.archive import split_arg

    assert split_arg("ctr:/etc") == ("ctr", "/etc")
    assert split_arg("/local:file") == (None, "/local:file")
    assert split_arg("./a:b") == (None, "./a:b")
    assert split_arg("-") == (None, "-")
