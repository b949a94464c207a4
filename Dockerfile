# The bot (no torch: speech runs on Modal). Build: docker build -t echo-voicebot .
# Run: docker compose up (see compose.yaml), with DISCORD_TOKEN and Modal credentials in .env.
# The image holds modal_tts/ and the modal client: `docker compose run --rm bot deploy` deploys the GPU side.
# Pinned to a Python release and Debian suite so a rebuild can't move to whatever `3.11-slim` means
# that day; updating is a deliberate edit, here and in the other Dockerfile.
FROM python:3.11.14-slim-bookworm

ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    VOICEBOT_DATA_DIR=/data

WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.9

# Dependencies first (cached while only the code changes), then the code.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY bot ./bot
COPY cogs ./cogs
COPY modal_tts ./modal_tts
COPY bench ./bench
RUN uv sync --locked --no-dev

RUN useradd --create-home --uid 10001 voicebot \
    && mkdir -p /data \
    && chown voicebot /data
USER 10001
VOLUME ["/data"]

# Healthy while the bot's gateway connection is up (it refreshes a heartbeat file every 30 s).
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 \
    CMD ["/app/.venv/bin/python", "-m", "bot.health"]

ENTRYPOINT ["/app/.venv/bin/voicebot"]
CMD ["run"]
