"""Settings: one pydantic-settings model, loadable from YAML, environment and a dict.

Precedence, highest first:

1. the mapping passed to :func:`load_settings` (``overrides``) — what code says wins;
2. environment variables with the ``PARLEY_`` prefix; nested fields use ``__``
   (``PARLEY_CONVERSATION__SYSTEM_PROMPT``), top-level ones do not
   (``PARLEY_PORT``, ``PARLEY_TWILIO_AUTH_TOKEN``);
3. the YAML file (``config_file`` or ``PARLEY_CONFIG``);
4. the defaults below.

Invalid settings fail at start with a :class:`~parley.errors.ConfigError` whose
``field`` is the dotted path of the offending setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from parley.engines.spec import EngineKind, EngineSpec, RealtimeSpec
from parley.errors import ConfigError
from parley.providers.registry import ProviderKind, ProviderOptions, check_spec
from parley.providers.voices import OPENAI_VOICES

__all__ = [
    "BUILT_FEATURES",
    "DEFAULT_OPENAI_MODEL",
    "ConversationConfig",
    "EngineKind",
    "HostedChoice",
    "ParleySettings",
    "choose_hosted",
    "engine_spec",
    "load_settings",
    "provider_options",
]

# Feature switches of ConversationConfig that are implemented. Enabling one that is
# not listed fails loudly: a production user must never believe a feature is on
# while it is silently ignored. Later modules add their switch here when they land.
BUILT_FEATURES: set[str] = {
    "enable_async_injection",  # parley.conversation.context
    "enable_analytics",  # parley.analytics: processors, history, the dashboard's data
    "track_costs",  # parley.metrics.cost, in each call's meter
    "track_engagement",  # parley.metrics.engagement, in each call's meter
    "enable_auth",  # parley.server.security
    "enable_caching",  # parley.server.persistence (parley.store.cache)
    "rate_limit_per_minute",  # parley.server.security (parley.security.limits)
}

_FEATURE_SWITCHES = (
    "enable_async_injection",
    "enable_caching",
    "enable_analytics",
    "track_costs",
    "track_engagement",
    "enable_auth",
)


class ConversationConfig(BaseModel):
    """Per-conversation behaviour; the fields of the seed documents."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system_prompt: str = "You are a helpful voice assistant. Keep answers short."
    voice: str = "joe"
    model: str = ""
    max_context_size: int = Field(default=8000, gt=0, description="tokens")
    context_window_minutes: float = Field(default=30.0, gt=0)
    enable_async_injection: bool = False
    target_latency_ms: int = Field(default=600, gt=0)
    enable_caching: bool = False
    cache_ttl_seconds: float = Field(default=300.0, gt=0)
    enable_analytics: bool = False
    track_costs: bool = False
    track_engagement: bool = False
    enable_auth: bool = False
    rate_limit_per_minute: int = Field(default=0, ge=0, description="0 = unlimited")
    # What the caller hears when a provider fails during a turn: never silence.
    apology_text: str = Field(
        default="Sorry, something went wrong on my side. Could you say that again?",
        min_length=1,
        max_length=500,
    )
    # A text middleware that raises: "skip" leaves it out for that turn (logged, an
    # ErrorEvent) and the caller still gets an answer; "strict" ends the turn with the
    # apology instead (for middleware that must never be bypassed, e.g. redaction).
    middleware_errors: Literal["skip", "strict"] = "skip"

    @model_validator(mode="after")
    def _reject_unbuilt_features(self) -> ConversationConfig:
        for name in _FEATURE_SWITCHES:
            if getattr(self, name) and name not in BUILT_FEATURES:
                raise ValueError(
                    f"{name}=true asks for a feature this version of Parley does not have yet"
                )
        if self.rate_limit_per_minute and "rate_limit_per_minute" not in BUILT_FEATURES:
            raise ValueError(
                "rate_limit_per_minute asks for rate limiting, which this version does not have yet"
            )
        return self


class ParleySettings(BaseSettings):
    """Process-wide settings for ``parley serve`` and the app facade."""

    model_config = SettingsConfigDict(
        env_prefix="PARLEY_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )
    yaml_file: ClassVar[Path | None] = None

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    engine: EngineKind = EngineKind.LOCAL
    brain: str = Field(
        default="echo", description="echo | template | openai:MODEL | anthropic:MODEL"
    )
    stt: str = Field(default="whisper:tiny.en", description="whisper:tiny.en | openai:MODEL")
    tts: str = Field(default="piper:joe", description="piper:joe | openai:MODEL")
    vad: str = Field(default="silero", description="silero | webrtc | energy")
    # Hosted speech (stt/tts openai:MODEL): endpoint and key (else OPENAI_API_KEY).
    audio_base_url: str | None = None
    audio_api_key: SecretStr | None = None
    template_file: Path | None = None
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    public_url: str | None = Field(
        default=None, description="https URL Twilio reaches us at; used for signatures"
    )
    twilio_auth_token: SecretStr | None = None
    twilio_token_ttl_seconds: float = Field(
        default=120.0, gt=0, description="life of the one-time token in the TwiML <Parameter>"
    )
    # Telnyx, Vonage and Plivo: each credential switches on its platform's webhook
    # signature check and keys the one-time tokens of its media streams (unset: open,
    # and the start banner says so). Telnyx signs with Ed25519: its public key checks
    # the webhook and a secret of ours (the API key) keys the tokens.
    telnyx_public_key: str | None = Field(default=None, description="base64 Ed25519 key")
    telnyx_api_key: SecretStr | None = None
    vonage_signature_secret: SecretStr | None = None
    plivo_auth_token: SecretStr | None = None
    # POST /calls places outbound calls through Twilio's REST API with these.
    twilio_account_sid: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    # WebRTC calls (POST /webrtc/offer): the only host addresses ICE offers (e.g.
    # ["127.0.0.1"] to keep a same-machine test on loopback); unset: every interface.
    webrtc_ice_addresses: list[str] | None = None
    drain_seconds: float = Field(default=10.0, ge=0)
    max_calls: int = Field(default=1000, ge=1)
    # The realtime engine (--engine realtime): OpenAI's Realtime API or any server that
    # speaks it (Azure, `parley realtime-server`). The key falls back to OPENAI_API_KEY.
    realtime_url: str = "wss://api.openai.com/v1/realtime"
    realtime_model: str = "gpt-realtime"
    realtime_api_key: SecretStr | None = None
    realtime_voice: str = "marin"
    # When the realtime upstream is unreachable or keeps failing, carry the call on
    # with the local cascade (Silero, Whisper, the brain, Piper).
    failover: bool = True
    # Parley's own Realtime-compatible endpoint at /v1/realtime: the key clients must
    # present (Authorization: Bearer …); unset = open, and the start banner says so.
    realtime_server_api_key: SecretStr | None = None
    # Each call's meter (parley.metrics): the REST latency figures, /metrics, traces.
    # False turns all of it off (and the analytics pipeline, which reads the meters).
    metrics: bool = True
    # enable_analytics: finished calls' metrics and analytics results are kept in this
    # SQLite file (relative: to the working directory) for this many days.
    analytics_db: Path = Path("parley-analytics.sqlite3")
    analytics_retention_days: float = Field(default=30.0, gt=0)
    # OpenTelemetry traces of calls over OTLP/HTTP (a full …/v1/traces URL; the
    # standard OTEL_EXPORTER_OTLP_*ENDPOINT variables work too). Needs parley-voice[otel].
    otlp_endpoint: str | None = None
    conversation: ConversationConfig = ConversationConfig()
    # -- production (issue 10): parley.server.security, parley.server.persistence -------
    # The ``auth:`` block (parley.security.Authenticator.from_settings): ``enabled``,
    # ``api_keys``, ``jwt``, ``client_secrets``. ``conversation.enable_auth`` turns it on.
    auth: dict[str, Any] = Field(default_factory=dict)
    # Limits per tier (parley.security.limits.TierLimits.from_mapping), by tier name;
    # ``default`` overrides the tier built from ``conversation.rate_limit_per_minute``.
    limits: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Pending conversations (made over REST, not yet connected) per user, and their life.
    max_pending_per_user: int = Field(default=100, ge=1)
    pending_ttl_seconds: float = Field(default=300.0, gt=0)
    # With authentication off, listening on anything but loopback needs this on purpose.
    allow_unauthenticated_public: bool = False
    # The tenant phone callers (Twilio, authenticated by signature + token) belong to.
    phone_tenant: str = Field(default="default", min_length=1)
    # What a client may ask for in POST /conversations besides the configured ones.
    allowed_brains: list[str] = Field(default_factory=list)
    allowed_engines: list[EngineKind] = Field(default_factory=list)
    # Every REST request body is refused (413) above this size.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Durable sessions: finished turns and ended calls in a store (SQLite file by
    # default, Redis with redis_url); "memory" keeps them in this process only.
    persist_conversations: bool = False
    session_store: Literal["sqlite", "redis", "memory"] | None = None
    session_db: Path = Path("parley.db")
    # A browser whose call dropped may reconnect with its session id within this time.
    resume_seconds: float = Field(default=120.0, ge=0)
    # Redis, shared by every node: sessions, limits, one-time tokens, the call
    # directory and the per-node command channels.
    redis_url: str | None = None
    node_id: str = ""
    node_lease_seconds: float = Field(default=10.0, gt=0)
    # Compliance (docs/compliance.md): "HIPAA" or none; the AES key "kid:base64,…".
    compliance_mode: Literal["HIPAA", "none"] | None = None
    encryption_key: SecretStr | None = None
    retention_days: float | None = Field(default=None, gt=0)
    redact_logs: bool = False

    @field_validator("brain", "stt", "tts", "vad")
    @classmethod
    def _check_provider(cls, value: str, info: Any) -> str:
        kind: ProviderKind = info.field_name
        try:
            return str(check_spec(kind, value))
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix(f"{kind}: ")) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=cls.yaml_file))
        return tuple(sources)


def _field_path(error: Mapping[str, Any]) -> str:
    return ".".join(str(p) for p in error.get("loc", ()) if p != "__root__")


def load_settings(
    config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> ParleySettings:
    """Build the settings from (in rising precedence) YAML, environment and ``overrides``."""
    path = config_file or os.environ.get("PARLEY_CONFIG")
    yaml_path = Path(path) if path else None
    if yaml_path is not None and not yaml_path.is_file():
        raise ConfigError(f"config file {yaml_path} does not exist", field="config")

    # A subclass per call keeps the YAML path out of global state.
    class _Settings(ParleySettings):
        yaml_file: ClassVar[Path | None] = yaml_path

    try:
        settings = _Settings(**dict(overrides or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(first["msg"], field=_field_path(first) or "settings") from exc
    return settings


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def engine_spec(
    settings: ParleySettings, conversation: ConversationConfig | None = None
) -> EngineSpec:
    """What the settings ask to answer calls with (the engine factory's input);
    ``conversation`` is the app's own config when it has one (else the settings')."""
    s = settings
    conv = conversation or s.conversation
    return EngineSpec(
        engine=s.engine,
        brain=s.brain,
        stt=s.stt,
        tts=s.tts,
        vad=s.vad,
        realtime=RealtimeSpec(
            url=s.realtime_url,
            model=s.realtime_model,
            api_key=_secret(s.realtime_api_key),
            voice=s.realtime_voice,
            failover=s.failover,
        ),
        apology=conv.apology_text,
    )


def provider_options(
    settings: ParleySettings, conversation: ConversationConfig | None = None
) -> ProviderOptions:
    """Keys, endpoints and files the providers need."""
    s = settings
    conv = conversation or s.conversation
    return ProviderOptions(
        llm_base_url=s.llm_base_url,
        llm_api_key=_secret(s.llm_api_key),
        audio_base_url=s.audio_base_url,
        audio_api_key=_secret(s.audio_api_key),
        template_file=s.template_file,
        tts_voice=conv.voice,
    )


#: The chat model of ``ParleyBackend(openai_api_key=…)`` when the config names none.
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


@dataclass(frozen=True, slots=True)
class HostedChoice:
    """What :func:`choose_hosted` made of the keys, ``model`` and ``voice`` it was given."""

    settings: ParleySettings
    config: ConversationConfig
    #: The one line the server logs at start when a request was mapped (None: nothing).
    note: str | None = None


def choose_hosted(
    settings: ParleySettings,
    config: ConversationConfig,
    *,
    api_key: str | None = None,
) -> HostedChoice:
    """The brain and voice the seed documents' ``ParleyBackend`` keywords ask for.

    - ``api_key`` (``openai_api_key=`` / ``api_key=``) is the key of the hosted brain
      (and, for OpenAI, of hosted speech and the Realtime engine unless they have one);
    - a brain set in the settings (``PARLEY_BRAIN``, YAML, ``settings=``) wins;
      otherwise with a key the brain is ``config.model`` (``claude-…``: Anthropic, else
      OpenAI; none: :data:`DEFAULT_OPENAI_MODEL`), and without a key it stays the
      offline one — ``model="gpt-4"`` is then said, not silently dropped;
    - an OpenAI voice (``voice="alloy"``) with Piper as the TTS speaks with Piper's
      voice, and says so. Any other unknown voice is refused when the app is built.
    """
    update: dict[str, Any] = {}
    said: list[str] = []
    brain_set = "brain" in settings.model_fields_set
    model = config.model.strip()
    brain = check_spec("brain", settings.brain)
    hosted = brain.name in ("openai", "anthropic")
    anthropic = model.startswith("claude") or (brain_set and brain.name == "anthropic")
    if api_key is not None:
        update["llm_api_key"] = SecretStr(api_key)
        if not anthropic and settings.realtime_api_key is None:
            update["realtime_api_key"] = SecretStr(api_key)
        if not anthropic and settings.audio_api_key is None:
            update["audio_api_key"] = SecretStr(api_key)
    has_key = api_key is not None or settings.llm_api_key is not None
    if brain_set:
        if model and not (hosted and brain.model == model):
            said.append(f"model={model!r} is not used: the brain is set to {settings.brain}")
    elif has_key:
        update["brain"] = (
            f"anthropic:{model}" if anthropic else f"openai:{model or DEFAULT_OPENAI_MODEL}"
        )
    elif model:
        said.append(
            f"model={model!r} needs a hosted brain and no API key is given: the brain is "
            f"{settings.brain} (offline; pass openai_api_key=… or set PARLEY_BRAIN="
            f"{'anthropic' if anthropic else 'openai'}:{model} and PARLEY_LLM_API_KEY)"
        )
    new_config = config
    tts = check_spec("tts", settings.tts)
    if tts.name == "piper" and config.voice != tts.model and config.voice in OPENAI_VOICES:
        new_config = config.model_copy(update={"voice": tts.model})
        said.append(
            f"voice={config.voice!r} is an OpenAI voice and the TTS is Piper: it speaks "
            f"with {tts.model!r} (PARLEY_TTS=openai:gpt-4o-mini-tts speaks {config.voice!r})"
        )
    new_settings = settings.model_copy(update=update) if update else settings
    note = "ConversationConfig: " + "; ".join(said) if said else None
    return HostedChoice(settings=new_settings, config=new_config, note=note)
