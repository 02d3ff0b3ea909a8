"""Speed levers of the transformer encoders: ``torch.compile`` of the blocks, CUDA graphs, SDPA kernel.

Each lever is off by default and changes only how the same computation runs, never the embedding
space (the encoder's version stays the same):

* ``compile_mode`` (``off``, ``default``, ``max-autotune``, ``max-autotune-no-cudagraphs``,
  ``reduce-overhead``): ``torch.compile`` of every transformer block of the towers in
  ``compile_towers`` (empty: all). Needs a C++ compiler on CPU, Triton on CUDA.
* ``cuda_graphs`` (``off``, ``auto``, ``on``): one CUDA graph per (tower, item shape, batch size)
  for the towers in ``graph_towers``; a batch is padded up to the next captured size
  (`embedstore.encoders.cuda_graphs`). ``on`` without CUDA raises `InvalidConfig`; ``auto`` runs
  eagerly there.
* ``sdpa_backend`` (``auto``, ``flash``, ``cudnn``, ``efficient``, ``math``): the attention
  kernel tried first; the math kernel serves the calls the chosen one cannot run (e.g. the
  masked one-row attention of text's last block under flash on CUDA). ``cudnn`` and ``efficient``
  have no CPU kernel and raise `InvalidConfig` there.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from embedstore.errors import InvalidConfig

if TYPE_CHECKING:
    from embedstore.config import Settings

COMPILE_MODES = ("off", "default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead")
INDUCTOR_GRAPH_MODES = ("max-autotune", "reduce-overhead")  # inductor's own CUDA graphs
CUDA_GRAPH_CHOICES = ("off", "auto", "on")
SDPA_BACKENDS: dict[str, SDPBackend | None] = {
    "auto": None,
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}
CUDA_ONLY_SDPA = ("cudnn", "efficient")  # no CPU kernel in torch
GRAPH_TOWERS = frozenset({"vision", "depth", "thermal", "imu"})
# Block.forward is one code object for every tower (widths, causal text, extra key/value, batch
# and sequence lengths each add a compiled entry): room for all of them before eager fallback
COMPILE_RECOMPILE_LIMIT = 64


@dataclass(frozen=True)
class Levers:
    """Which levers an encoder uses; the defaults are plain eager PyTorch."""

    compile_mode: str = "off"
    compile_towers: frozenset[str] | None = None  # None: every tower
    cuda_graphs: str = "off"
    graph_towers: frozenset[str] = GRAPH_TOWERS
    graph_batches: tuple[int, ...] = ()  # captured batch sizes; () = powers of two to batch_size
    batch_size: int = 32
    sdpa_backend: str = "auto"

    def __post_init__(self) -> None:
        check_choice(self.compile_mode, COMPILE_MODES, "compile_mode")
        check_choice(self.cuda_graphs, CUDA_GRAPH_CHOICES, "cuda_graphs")
        check_choice(self.sdpa_backend, tuple(SDPA_BACKENDS), "sdpa_backend")
        if any(b < 1 for b in self.graph_batches):
            raise InvalidConfig(
                f"cuda_graph_batches must be positive batch sizes, got {list(self.graph_batches)}",
                field="cuda_graph_batches",
            )

    @property
    def active(self) -> bool:
        """True when any lever is on (compile, CUDA graphs, or a chosen attention kernel)."""
        return self.compiles or self.cuda_graphs != "off" or self.sdpa_backend != "auto"

    @property
    def compiles(self) -> bool:
        """True when the blocks are compiled."""
        return self.compile_mode != "off"

    def compiled_towers(self, towers: Iterable[str]) -> list[str]:
        """The towers among ``towers`` whose blocks get compiled (in ``towers``' order)."""
        if not self.compiles:
            return []
        return [t for t in towers if self.compile_towers is None or t in self.compile_towers]

    def capture_sizes(self) -> tuple[int, ...]:
        """The batch sizes CUDA graphs are captured at, ascending."""
        if self.graph_batches:
            return tuple(sorted(set(self.graph_batches)))
        sizes = {self.batch_size}
        size = 1
        while size < self.batch_size:
            sizes.add(size)
            size *= 2
        return tuple(sorted(sizes))

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (benchmark rows, logs)."""
        return {
            "compile_mode": self.compile_mode,
            "compile_towers": None if self.compile_towers is None else sorted(self.compile_towers),
            "cuda_graphs": self.cuda_graphs,
            "graph_towers": sorted(self.graph_towers),
            "graph_batches": list(self.capture_sizes()),
            "sdpa_backend": self.sdpa_backend,
        }


def check_choice(value: str, choices: tuple[str, ...], field: str) -> None:
    """Raise `InvalidConfig` naming ``field`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise InvalidConfig(
            f"{field} must be one of {', '.join(choices)}, got {value!r}", field=field
        )


def parse_towers(text: str) -> frozenset[str] | None:
    """A comma list of tower names; empty gives None (every tower)."""
    names = frozenset(t.strip() for t in text.split(",") if t.strip())
    return names or None


def parse_batches(text: str, field: str = "cuda_graph_batches") -> tuple[int, ...]:
    """A comma list of batch sizes (``"8,32,64"``); `InvalidConfig` naming ``field`` if not."""
    try:
        return tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError as e:
        raise InvalidConfig(
            f"{field} must be comma-separated batch sizes, got {text!r}", field=field
        ) from e


def levers_from_settings(settings: Settings | None) -> Levers:
    """The levers the settings ask for (all off without settings)."""
    if settings is None:
        return Levers()
    return Levers(
        compile_mode=settings.compile_mode,
        compile_towers=parse_towers(settings.compile_towers),
        cuda_graphs=settings.cuda_graphs,
        graph_towers=parse_towers(settings.cuda_graph_towers) or GRAPH_TOWERS,
        graph_batches=parse_batches(settings.cuda_graph_batches),
        batch_size=settings.batch_size,
        sdpa_backend=settings.sdpa_backend,
    )


def check_levers(
    levers: Levers, device: torch.device, towers: Iterable[str], graphable: Iterable[str]
) -> None:
    """Raise `InvalidConfig` for levers this device or model cannot honour.

    ``towers`` are the encoder's towers, ``graphable`` those with fixed item shapes (CUDA graphs).
    """
    towers = frozenset(towers)
    if levers.compile_towers is not None and not levers.compile_towers <= towers:
        unknown = ", ".join(sorted(levers.compile_towers - towers))
        raise InvalidConfig(
            f"compile_towers names {unknown}; towers: {', '.join(sorted(towers))}",
            field="compile_towers",
        )
    if levers.cuda_graphs != "off" and not levers.graph_towers <= frozenset(graphable):
        bad = ", ".join(sorted(levers.graph_towers - frozenset(graphable)))
        raise InvalidConfig(
            f"cuda_graph_towers names {bad}, whose batches have no fixed shape to capture; "
            f"graphable towers: {', '.join(sorted(graphable))}",
            field="cuda_graph_towers",
        )
    if levers.cuda_graphs != "off" and levers.compile_mode in INDUCTOR_GRAPH_MODES:
        raise InvalidConfig(
            f"compile_mode={levers.compile_mode} captures CUDA graphs itself; with cuda_graphs "
            "use compile_mode default or max-autotune-no-cudagraphs",
            field="compile_mode",
        )
    if levers.cuda_graphs == "on" and device.type != "cuda":
        raise InvalidConfig(
            f"cuda_graphs=on needs a CUDA device, but the encoder runs on {str(device)!r}; "
            "use cuda_graphs=auto to run eagerly where CUDA is missing, or off",
            field="cuda_graphs",
        )
    if levers.sdpa_backend in CUDA_ONLY_SDPA and device.type != "cuda":
        raise InvalidConfig(
            f"sdpa_backend={levers.sdpa_backend} has no kernel on {str(device)!r} (CUDA only); "
            "use auto, flash or math there",
            field="sdpa_backend",
        )


def graphs_active(levers: Levers, device: torch.device) -> bool:
    """True when CUDA graphs are used: ``on``, or ``auto`` on a CUDA device."""
    return levers.cuda_graphs == "on" or (levers.cuda_graphs == "auto" and device.type == "cuda")


def sdpa_context(backend: str) -> AbstractContextManager[Any]:
    """The attention kernel choice for ``backend``: it first, then the math kernel (``auto``: torch's)."""
    chosen = SDPA_BACKENDS[backend]
    if chosen is None:
        return nullcontext()
    if chosen == SDPBackend.MATH:
        return sdpa_kernel([SDPBackend.MATH])
    return sdpa_kernel([chosen, SDPBackend.MATH], set_priority=True)


def compile_blocks(blocks: Iterable[torch.nn.Module], mode: str) -> int:
    """``torch.compile`` each block in place (``forward`` and, if present, ``forward_rows``).

    The blocks share one compiled entry per shape (same code object), so a tower compiles once.
    Returns how many blocks were compiled.
    """
    options: dict[str, Any] = {"recompile_limit": COMPILE_RECOMPILE_LIMIT}
    if mode != "default":
        options["mode"] = mode
    count = 0
    for block in blocks:
        block.compile(**options)
        rows = getattr(block, "forward_rows", None)
        if rows is not None:
            setattr(block, "forward_rows", torch.compile(rows, **options))  # noqa: B010
        count += 1
    return count
