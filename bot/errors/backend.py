"""The speech backend (Modal or the local GPU) couldn't do the job: `BackendError` and its family.

Each carries an `admin_hint` for whoever runs the bot; a few add `exit_code`, `detail` or `admin_message`.
"""

from __future__ import annotations

from bot.errors.base import InvalidInput, VoiceBotError


class BackendError(VoiceBotError):
    """The speech backend could not do the job; `admin_hint` says what a server admin should do."""

    admin_hint: str = ""


class BackendNotDeployed(BackendError):
    admin_hint = "Deploy the GPU app with `modal deploy modal_tts/app.py`, then try again."

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "The speech engine isn't set up yet, so nothing can be spoken right now. "
            "A bot admin needs to deploy it."
        )
        self.detail = detail


class BackendOutdated(BackendError):
    """The deployed Modal app and this bot are different releases: their wire formats differ."""

    admin_hint = "Redeploy the GPU app from this bot's install with `voicebot deploy`, then try again."

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "The speech engine is from another version of this bot, so nothing can be spoken right now. "
            "A bot admin needs to redeploy it."
        )
        self.detail = detail


class LocalEngineUnavailable(BackendError):
    """The local backend can't start here: its weights folder or its device. `detail` says which and
    how to fix it, for the admin (the terminal shows it as is); `voicebot doctor` shows `what` and
    `fix` on lines of their own when the fix is given apart."""

    admin_hint = "Run `voicebot doctor` on the bot's machine."
    exit_code = 2  # a setup to fix, like a bad setting: trying again can't help

    def __init__(self, what: str, fix: str | None = None) -> None:
        super().__init__("The speech engine can't start on this machine. A bot admin needs to check it.")
        self.what, self.fix = what, fix
        self.detail = f"{what}: {fix}" if fix else what


class BackendUnauthorised(BackendError):
    admin_hint = "Set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (or run `uv run modal token new`)."

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "The bot can't sign in to its speech engine. A bot admin needs to check its Modal credentials."
        )
        self.detail = detail


class EngineNotInstalled(LocalEngineUnavailable):
    """The local backend was chosen where the `engine` extra (torch, echo-tts) isn't installed."""

    def __init__(self, missing: list[str]) -> None:
        from modal_tts.prerequisites import needs_the_extra, run_install

        super().__init__(needs_the_extra("The local speech backend", missing), run_install())
        self.missing = missing


class ModalCredentialsMissing(BackendUnauthorised):
    """No Modal token in the environment, .env or ~/.modal.toml: one wording and exit code wherever
    it shows (clone, say, run, doctor, deploy), distinct from a token Modal rejects."""

    exit_code = 2
    what = "No Modal credentials"
    fix = (
        "create a token at modal.com (Settings → API Tokens) or with `uv run modal token new`, then set "
        "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET in the environment or .env."
    )
    admin_message = f"{what}: {fix}"

    def __init__(self) -> None:
        super().__init__("no MODAL_TOKEN_ID / MODAL_TOKEN_SECRET and no ~/.modal.toml")


class BackendTimedOut(BackendError):
    admin_hint = (
        "The GPU took too long: on Modal, check its dashboard for cold starts or errors; on a local GPU, "
        "`voicebot doctor` and the bot's log."
    )

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The speech engine didn't answer within {seconds:.0f} s. Try again in a minute, "
            "perhaps with shorter text."
        )
        self.seconds = seconds


class BackendBusy(BackendError):
    admin_hint = "Raise ECHO_MAX_CONTAINERS (Modal) or the local queue size if this is frequent."

    def __init__(self, detail: str = "") -> None:
        super().__init__("The speech engine is busy with other requests. Try again in a moment.")
        self.detail = detail


class BackendUnreachable(BackendError):
    admin_hint = "The bot's machine can't reach Modal: check its network connection."

    def __init__(self, detail: str = "") -> None:
        super().__init__("The bot can't reach its speech engine right now. Try again in a minute.")
        self.detail = detail


class BackendFailed(BackendError):
    admin_hint = "See the bot's log for the error and `voicebot doctor` for a health check."

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "The speech engine failed on that request. Try again; if it keeps failing, tell a bot admin."
        )
        self.detail = detail


class SilentSpeech(BackendError):
    admin_hint = "The engine returned silent audio; check the weights (`voicebot doctor`) and the GPU's log."

    def __init__(self) -> None:
        super().__init__(
            "The speech engine returned silence instead of speech, so there was nothing to play. "
            "Try again, perhaps with another seed; if it keeps happening, tell a bot admin."
        )


class BackendInvalidRequest(BackendError, InvalidInput):
    admin_hint = "The request's settings were out of range; the message says which."

    def __init__(self, detail: str) -> None:
        VoiceBotError.__init__(self, detail)
        self.detail = detail


class SpeakerLatentRejected(BackendInvalidRequest):
    """The voice's stored latent is unusable (wrong shape, NaN or infinite values): the fault is the
    voice's, not the request's, so the caller marks it for re-encoding from its recording."""

    admin_hint = "The voice's latent is damaged; `voicebot doctor` re-encodes it from its recording."

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.message = (
            "That voice's data is damaged, so it can't speak right now; it is being rebuilt from its "
            "recording. Try again in a few minutes."
        )
        self.args = (self.message,)
        self.admin_message = (
            f"That voice's stored latent is damaged ({detail}); `voicebot doctor` re-encodes it from its "
            "recording."
        )


class ModelLoadTimedOut(BackendTimedOut):
    """The local backend's weights didn't finish loading within the backend's timeout."""

    admin_hint = "Check the weights folder's disk and the GPU driver: `voicebot doctor` tries a load."

    def __init__(self, seconds: float) -> None:
        VoiceBotError.__init__(
            self,
            f"Loading the speech model timed out after {seconds:.0f} s. Try again in a minute; if it "
            "keeps happening, tell a bot admin.",
        )
        self.seconds = seconds
