"""`voicebot deploy`'s settings and failures: a bad ECHO_* value stops deploy alone (exit 2, one line, nothing
deployed), and whatever goes wrong while talking to Modal is one line on stderr (exit 1) with stdout empty
or JSON. The real CLI entry, a fake Modal."""

from __future__ import annotations

import json
import re
import socket

import modal.exception
import pytest
from grpclib.exceptions import StreamTerminatedError

from bot.cli import deploy, main
from bot.tts import readiness

BAD_TIMEOUT = (
    "voicebot: ECHO_TIMEOUT is '1.5' in the environment or .env; allowed is a whole number of seconds from "
    "1 to 86400. Fix it, or pass --timeout.\n"
)


class FakeModal:
    """Stands in for `ModalCloud`; prints on stdout as `modal.enable_output()` does, and fails where told."""

    def __init__(self, fail_at: str | None = None, error: BaseException | None = None) -> None:
        self.fail_at, self.error = fail_at, error
        self.deployed_with: dict[str, str] | None = None

    def _step(self, name: str) -> None:
        print(f"✓ {name}")  # what Modal's rich output writes to sys.stdout while it works
        if self.fail_at == name and self.error is not None:
            raise self.error

    def deploy(self, env):
        self._step("deploy")
        self.deployed_with = env

    def fill_weights(self, app_name):
        self._step("fill_weights")
        return ["echo/pytorch_model.safetensors"]

    def info(self, app_name):
        self._step("info")
        return {"gpu": "L40S", "device_name": "NVIDIA L40S", "revision": "echo-abc123"}


@pytest.fixture
def voicebot(tmp_path, monkeypatch, capsys):
    """`voicebot ARGS` in an empty folder with no ECHO_* set, Modal credentials present and Modal faked;
    returns (code, stdout, stderr, the fake)."""
    for _, var, _, _ in deploy.SETTINGS:
        monkeypatch.setenv(var, "placeholder")  # so that undo also removes what main copies from .env
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(readiness, "modal_credentials", lambda environ=None: True)
    monkeypatch.setattr(readiness, "modal_unreachable", lambda: None)

    def invoke(*argv: str, cloud: FakeModal | None = None) -> tuple[int, str, str, FakeModal]:
        fake = cloud or FakeModal()
        monkeypatch.setattr(deploy, "ModalCloud", lambda: fake)
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err, fake

    return invoke


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_a_bad_deploy_setting_stops_deploy_only(voicebot, tmp_path, monkeypatch, where):
    if where == "environment":
        monkeypatch.setenv("ECHO_TIMEOUT", "1.5")
        monkeypatch.setenv("ECHO_GPU", "H100")
    else:
        (tmp_path / ".env").write_text("ECHO_TIMEOUT=1.5\nECHO_GPU=H100\n")

    code, out, err, _ = voicebot("voices", "--guild", "1", "--data-dir", str(tmp_path / "data"))
    assert (code, err) == (0, "")

    code, out, err, fake = voicebot("deploy")
    assert (code, out, err) == (2, "", BAD_TIMEOUT)
    assert fake.deployed_with is None

    code, out, err, fake = voicebot("deploy", "--timeout", "300")  # the flag wins over the bad variable
    assert code == 0 and out.startswith("✓ deploy\n") and "Deployed echo-voicebot on L40S" in out
    assert fake.deployed_with is not None
    assert (fake.deployed_with["ECHO_TIMEOUT"], fake.deployed_with["ECHO_GPU"]) == ("300", "H100")


@pytest.mark.parametrize(
    ("var", "value", "allowed"),
    [
        ("ECHO_APP_NAME", "my app", "1 to 64 letters, digits, '-', '_' or '.' (Modal's rule for app names)"),
        ("ECHO_APP_NAME", "a" * 65, "1 to 64 letters, digits, '-', '_' or '.' (Modal's rule for app names)"),
        (
            "ECHO_APP_NAME",
            "ap-" + "x" * 22,
            "1 to 64 letters, digits, '-', '_' or '.' (Modal's rule for app names)",
        ),
        ("ECHO_GPU", " ", "a GPU type such as L40S, H100, A100 or L4"),
        ("ECHO_SCALEDOWN_WINDOW", "1", "a whole number of seconds from 2 to 3600"),
        ("ECHO_SCALEDOWN_WINDOW", "3601", "a whole number of seconds from 2 to 3600"),
        ("ECHO_MIN_CONTAINERS", "-1", "a whole number from 0 up"),
        ("ECHO_MIN_CONTAINERS", "3", "at most max containers (2)"),
        ("ECHO_MAX_CONTAINERS", "0", "a whole number from 1 up"),
        ("ECHO_TIMEOUT", "0", "a whole number of seconds from 1 to 86400"),
        ("ECHO_TIMEOUT", "86401", "a whole number of seconds from 1 to 86400"),
        ("ECHO_TIMEOUT", "5m", "a whole number of seconds from 1 to 86400"),
        ("ECHO_MAX_INPUTS", "0", "a whole number from 1 up"),
        ("ECHO_MAX_INPUTS", "4", "at least target inputs (8)"),
        ("ECHO_TARGET_INPUTS", "17", "at most max inputs (16)"),
        ("ECHO_CPU", "0", "a number of CPU cores above 0, such as 4 or 0.5"),
        ("ECHO_CPU", "nan", "a number of CPU cores above 0, such as 4 or 0.5"),
        ("ECHO_CPU", "four", "a number of CPU cores above 0, such as 4 or 0.5"),
        ("ECHO_MAX_BATCH", "16", "a whole number from 1 to 8"),
        ("ECHO_MAX_BATCH", "0", "a whole number from 1 to 8"),
        ("ECHO_FASTPATH", "compile", "graphs or off"),
    ],
)
def test_each_setting_outside_what_modal_accepts_is_named_in_one_line(
    voicebot, monkeypatch, var, value, allowed
):
    monkeypatch.setenv(var, value)
    flag = deploy.FLAGS[var]
    code, out, err, fake = voicebot("deploy", "--json")
    assert (code, out, fake.deployed_with) == (2, "", None)
    assert err == (
        f"voicebot: {var} is {value!r} in the environment or .env; allowed is {allowed}. "
        f"Fix it, or pass {flag}.\n"
    )


def test_a_bad_flag_is_named_as_the_flag(voicebot):
    code, out, err, fake = voicebot("deploy", "--max-batch", "16")
    assert (code, out, fake.deployed_with) == (2, "", None)
    assert err == "voicebot: --max-batch is '16'; allowed is a whole number from 1 to 8.\n"
    code, out, err, fake = voicebot("deploy", "--min-containers", "2", "--max-containers", "1")
    assert (code, out, fake.deployed_with) == (2, "", None)
    assert err == "voicebot: --max-containers is '1'; allowed is at least min containers (2).\n"


def test_the_limits_themselves_deploy_as_given(voicebot, monkeypatch):
    monkeypatch.setenv("ECHO_SCALEDOWN_WINDOW", "3600")
    monkeypatch.setenv("ECHO_TIMEOUT", " 86400 ")
    monkeypatch.setenv("ECHO_CPU", "0.5")
    argv = ["--app-name", "my.app_2-b", "--min-containers", "0", "--max-containers", "1", "--max-batch", "1"]
    code, _, err, fake = voicebot("deploy", *argv, "--target-inputs", "16", "--fastpath", "off")
    assert code == 0, err
    assert fake.deployed_with == {
        "ECHO_APP_NAME": "my.app_2-b",
        "ECHO_GPU": "L40S",
        "ECHO_SCALEDOWN_WINDOW": "3600",
        "ECHO_MIN_CONTAINERS": "0",
        "ECHO_MAX_CONTAINERS": "1",
        "ECHO_TIMEOUT": "86400",
        "ECHO_MAX_INPUTS": "16",
        "ECHO_TARGET_INPUTS": "16",
        "ECHO_CPU": "0.5",
        "ECHO_MAX_BATCH": "1",
        "ECHO_FASTPATH": "off",
    }


def test_deploy_help_lists_each_flag_with_its_variable_and_default(voicebot, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps to the terminal: the same width on any machine
    monkeypatch.setenv("ECHO_TIMEOUT", "1.5")  # --help works with a bad setting too
    code, out, err, _ = voicebot("deploy", "--help")
    assert (code, err) == (0, "")
    options = " ".join(re.sub(r"-\n\s+", "-", out.split("options:")[1]).split())  # argparse wrapping undone
    for flag, var, default, _ in deploy.SETTINGS:
        assert re.search(rf" {flag} [A-Z]+ [^$]+ \(\${var}; default {default}\)", options), flag


def test_the_largest_max_batch_is_the_largest_batch_the_fast_path_captures():
    pytest.importorskip("torch")
    from modal_tts.fastpath import BATCH_SIZES

    assert deploy.LARGEST_BATCH == BATCH_SIZES[-1]


def test_the_app_names_a_bad_setting_when_the_container_imports_it(monkeypatch):
    from modal_tts import app

    monkeypatch.setenv("ECHO_TIMEOUT", "1.5")
    with pytest.raises(
        ValueError, match=r"^ECHO_TIMEOUT is '1\.5' in the environment; allowed is a whole number"
    ):
        app._env_number("ECHO_TIMEOUT", 300)
    monkeypatch.setenv("ECHO_CPU", "four")
    with pytest.raises(ValueError, match=r"^ECHO_CPU is 'four' in the environment; allowed is a number"):
        app._env_number("ECHO_CPU", 4.0)
    monkeypatch.setenv("ECHO_CPU", "0.5")
    assert app._env_number("ECHO_CPU", 4.0) == 0.5


STEPS = {
    "deploy": "deploying echo-voicebot",
    "fill_weights": "filling the weights Volume",
    "info": "calling info()",
}
NETWORK = ". Check the network, then run `voicebot deploy` again."
DROPS = [
    (
        modal.exception.ConnectionError("Deadline exceeded"),
        "Can't reach Modal while {} (Deadline exceeded)" + NETWORK,
    ),
    (
        ConnectionResetError(104, "Connection reset by peer"),
        "Can't reach Modal while {} (Connection reset by peer)" + NETWORK,
    ),
    (TimeoutError(), "Can't reach Modal while {} (TimeoutError)" + NETWORK),
    (TimeoutError("timed out"), "Can't reach Modal while {} (timed out)" + NETWORK),  # asyncio's is this one
    (
        socket.gaierror(-3, "Temporary failure in name resolution"),
        "Can't reach Modal while {} (Temporary failure in name resolution)" + NETWORK,
    ),
    (OSError(101, "Network is unreachable"), "Can't reach Modal while {} (Network is unreachable)" + NETWORK),
    (
        StreamTerminatedError("Connection lost"),
        "Deploy failed while {}: StreamTerminatedError: Connection lost",
    ),
    (RuntimeError("boom\nand a second line"), "Deploy failed while {}: RuntimeError: boom"),
]


def without_progress(err: str) -> str:
    """stderr less deploy's own step lines ("voicebot: Deploying …"), which always show."""
    return "".join(line for line in err.splitlines(keepends=True) if not line.endswith("…\n"))


@pytest.mark.parametrize("json_flag", [True, False], ids=["json", "text"])
@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize(("error", "message"), DROPS, ids=[type(e).__name__ for e, _ in DROPS])
def test_a_failure_at_any_step_is_one_line_and_stdout_stays_json(voicebot, step, error, message, json_flag):
    code, out, err, _ = voicebot("deploy", *(["--json"] if json_flag else []), cloud=FakeModal(step, error))
    err = without_progress(err)
    # Modal's own progress up to the failure: on stdout, but on stderr with --json
    progress = "".join(f"✓ {name}\n" for name in list(STEPS)[: list(STEPS).index(step) + 1])
    line = f"voicebot: {message.format(STEPS[step])}\n"
    assert code == 1
    assert (out, err) == (("", progress + line) if json_flag else (progress, line))


def test_with_json_stdout_is_only_the_json(voicebot):
    code, out, err, _ = voicebot("deploy", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["app"], result["weights_fetched"]) == ("echo-voicebot", ["echo/pytorch_model.safetensors"])
    assert without_progress(err) == "✓ deploy\n✓ fill_weights\n✓ info\n"


def test_no_credentials_are_one_line_with_the_same_words_as_every_command(voicebot, monkeypatch):
    monkeypatch.setattr(readiness, "modal_credentials", lambda environ=None: False)
    code, out, err, fake = voicebot("deploy")
    assert (code, out) == (2, "") and fake.deployed_with is None
    assert err == (
        "voicebot: No Modal credentials: create a token at modal.com (Settings → API Tokens) or with "
        "`uv run modal token new`, then set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET in the environment or "
        ".env.\n"
    )
    code, _, say_err, _ = voicebot("say", "--guild", "1", "--voice", "Ada", "--out", "hello.ogg", "Hi")
    assert (code, say_err) == (2, err)  # `say` (and `clone`, `run`) word it the same, before any work


def test_offline_deploy_fails_in_seconds_after_saying_what_it_checks(voicebot, monkeypatch):
    monkeypatch.setattr(
        readiness,
        "modal_unreachable",
        lambda: "Can't reach Modal at api.modal.com (Name or service not known)",
    )
    code, out, err, fake = voicebot("deploy")
    assert (code, out) == (1, "") and fake.deployed_with is None  # Modal's minute of retries never starts
    assert err == (
        "voicebot: Checking that Modal answers…\n"
        "voicebot: Can't reach Modal at api.modal.com (Name or service not known): check the network, "
        "then run `voicebot deploy` again.\n"
    )


def test_deploy_shows_its_steps_even_when_stderr_is_not_a_terminal(voicebot):
    code, _, err, _ = voicebot("deploy")
    assert code == 0
    assert [line for line in err.splitlines() if line.endswith("…")] == [
        "voicebot: Checking that Modal answers…",
        "voicebot: Deploying echo-voicebot (GPU L40S)…",
        "voicebot: Filling the weights Volume (first deploy downloads about 6 GB)…",
        "voicebot: Calling info() once: this is a cold start…",
    ]
