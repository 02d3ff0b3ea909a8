"""Settings: one typed object, filled from CLI flags > ``EMBEDSTORE_*`` env > TOML file > defaults."""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from embedstore.errors import InvalidConfig

Precision = Literal["fp32", "tf32", "bf16", "fp16"]
GpuDecode = Literal["auto", "on", "off"]
GeneratorPrecision = Literal["auto", "fp32", "bf16", "fp16"]
Device = str  # "auto", "cpu", "cuda", "cuda:1"
# The TOML file given to load_settings (``--config``), seen by settings_customise_sources while
# that call builds its Settings: the environment is read, never written.
_CONFIG_FILE: ContextVar[str | None] = ContextVar("embedstore_config_file", default=None)


def default_data_dir() -> Path:
    """Where embedstore keeps its database, indexes and weights unless told otherwise."""
    return Path(platformdirs.user_data_dir("embedstore"))


class Settings(BaseSettings):
    """Everything configurable about embedstore, in one place."""

    model_config = SettingsConfigDict(
        env_prefix="EMBEDSTORE_", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    weights_dir: Path | None = None
    weights_path: Path | None = None
    # imagebind_huge download: a mirror of the official URL, and a sha256 to enforce
    imagebind_huge_url: str | None = None
    imagebind_huge_sha256: str | None = None
    encoder: str = "imagebind_huge"
    demo_encoder: str | None = None  # make demo: None = imagebind_huge, fetched if missing
    device: Device = "auto"
    precision: Precision = "fp32"
    batch_size: int = Field(32, ge=1, le=4096)
    workers: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) - 1), ge=0, le=256)
    index_spec: str = "auto"
    # new collections' index backend: "faiss" (index files) or "pgvector" (PostgreSQL catalog)
    index_backend: Literal["faiss", "pgvector"] = "faiss"
    # s3:// inputs (embedstore.ingest.objects): a custom endpoint such as http://127.0.0.1:9000
    # (MinIO, Ceph); None: the AWS SDK's AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS itself
    s3_endpoint_url: str | None = None
    # HTTP API
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: str = ""
    allow_anonymous_loopback: bool = True
    cors_origins: str = ""
    roots: str = ""
    public_docs: bool = False  # /docs, /redoc and /openapi.json without a key (API keys set)
    max_upload_bytes: int = Field(64 * 1024 * 1024, ge=1)
    max_json_bytes: int = Field(1024 * 1024, ge=1)
    max_query_chars: int = Field(1000, ge=1)
    max_k: int = Field(1000, ge=1)
    batch_wait_ms: float = Field(2.0, ge=0)  # only while the model is busy; idle: dispatch at once
    request_timeout_s: float = Field(60.0, gt=0)  # a query without an answer by then gets a 504
    # models: a failed encoder load is not retried for this long (each request gets its error)
    encoder_retry_s: float = Field(60.0, ge=0)
    # torch intra-op threads, set once per process (0: leave a core to each decode worker on CPU)
    torch_threads: int = Field(0, ge=0, le=1024)
    # media decoding limits
    max_file_bytes: int = Field(2 * 1024 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(89_478_485, ge=1)
    decode_timeout_s: float = Field(60.0, gt=0)
    # writes to a collection wait at most this long while reindex --encoder swaps it (then 503)
    writer_gate_timeout_s: float = Field(600.0, gt=0)
    # JPEG decode + resize on the encoder's device (embedstore.modalities.gpu_decode): "auto" = on
    # CUDA only while the measured deviation passes the bar there, "on" = any device, "off" = never
    gpu_decode: GpuDecode = "auto"
    # ImageBind speed levers (embedstore.encoders.levers; same embeddings, off by default):
    # torch.compile of the transformer blocks of compile_towers ("" = all), CUDA graphs per
    # (tower, batch size) of cuda_graph_towers at cuda_graph_batches ("" = powers of two up to
    # batch_size; "auto" = eager without CUDA), the SDPA attention kernel tried first
    compile_mode: Literal[
        "off", "default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead"
    ] = "off"
    compile_towers: str = ""
    cuda_graphs: Literal["off", "auto", "on"] = "off"
    cuda_graph_towers: str = "vision,depth,thermal,imu"
    cuda_graph_batches: str = ""
    sdpa_backend: Literal["auto", "flash", "cudnn", "efficient", "math"] = "auto"
    # generators (captions, ask; the [llava] extra) and keyword/hybrid search
    generator: str = "llava:llava-hf/llava-1.5-7b-hf"
    generator_precision: GeneratorPrecision = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    generator_batch_size: int = Field(8, ge=1, le=256)
    caption_prompt: str = "Describe this picture in one sentence."
    caption_max_tokens: int = Field(48, ge=1, le=1024)
    caption_frames: int = Field(3, ge=1, le=16)  # keyframes a video is captioned from
    rrf_k: float = Field(60.0, gt=0)  # reciprocal rank fusion constant of hybrid search
    hybrid_candidates: int = Field(50, ge=1)  # hits each side of a hybrid search contributes
    ask_max_images: int = Field(4, ge=0, le=64)
    ask_max_prompt_tokens: int = Field(3072, ge=16)
    ask_max_answer_tokens: int = Field(256, ge=1)
    ask_timeout_s: float = Field(120.0, gt=0)

    @field_validator("data_dir", "weights_dir", "weights_path", mode="after")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

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
        given = _CONFIG_FILE.get()
        path = given or os.environ.get("EMBEDSTORE_CONFIG")
        if path:
            if not Path(path).is_file():
                origin = "--config" if given else "EMBEDSTORE_CONFIG"
                raise InvalidConfig(f"Config file {path!r} ({origin}) does not exist")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # -- derived values ------------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: the configured one, else a SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'embedstore.db'}"

    @property
    def resolved_weights_dir(self) -> Path:
        """Folder searched for (and downloaded into) model weights."""
        return self.weights_dir or self.data_dir / "weights"

    @property
    def index_dir(self) -> Path:
        """Folder of the FAISS index files (a rebuildable cache of the database)."""
        return self.data_dir / "indexes"

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def root_list(self) -> list[Path]:
        return [Path(r).expanduser().resolve() for r in self.roots.split(os.pathsep) if r.strip()]

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def resolved_device(self) -> str:
        """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``."""
        if self.device != "auto":
            return self.device
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:  # pragma: no cover - torch is a hard dependency
            return "cpu"


def load_settings(config: Path | str | None = None, **flags: Any) -> Settings:
    """Build settings; ``flags`` (CLI options) that are not None beat env and the config file.

    ``config`` (``--config``) names the TOML file instead of ``EMBEDSTORE_CONFIG``; the process
    environment is left as it was.
    """
    token = _CONFIG_FILE.set(str(config) if config else None)
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except InvalidConfig:
        raise
    except Exception as e:  # pydantic.ValidationError, TOML errors
        raise InvalidConfig(f"Invalid settings: {e}") from e
    finally:
        _CONFIG_FILE.reset(token)
