"""The model adapter interface: what every video-transformer family must declare.

An adapter knows a family's token grid, heads, hook points and preprocessing, and
captures per-head keys/queries/values plus residual-stream tokens for chosen layers in
one forward pass. Capture hooks only read activations; :meth:`ModelAdapter.edited_residual`
is the one hook that changes them, on purpose (the SAE's causal ablation).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from videoconcepts.plan.families import FAMILIES, ModelSpec

HeadKind = Literal["keys", "queries", "values"]
HEAD_KINDS: tuple[HeadKind, ...] = ("keys", "queries", "values")
# The `remove` masking mode's bias for the current masks, given the compute dtype:
# (additive key bias (B', heads, 1, S), heads left with no key (B', heads)), or None
# when nothing is masked in that layer.
KeyBias = Callable[[torch.dtype], "tuple[torch.Tensor, torch.Tensor] | None"]


@dataclass(frozen=True)
class TokenGrid:
    """Patch-token layout (T', H', W') of one clip, excluding special tokens."""

    frames: int
    height: int
    width: int

    @property
    def size(self) -> int:
        return self.frames * self.height * self.width


@dataclass(frozen=True)
class FlopCount:
    """FLOPs as ``torch.utils.flop_counter.FlopCounterMode`` counts them: 2 per
    multiply-add of every matrix product and convolution (softmax, normalisations and
    activations are not counted), so multiply-adds are half of these."""

    total: int  # one scored forward pass of one clip: everything the outputs need
    # per layer, one head of the masked attention: its q/k/v and output projection
    # slices and its two token-by-token products
    head: tuple[int, ...]


@dataclass
class Capture:
    """Activations of one batch. Head tensors are (B, L, heads, T', H', W', head_dim),
    residual tokens (B, L, T', H', W', hidden); L indexes the requested layers. Head
    tensors are strided views: call ``.contiguous()`` before heavy per-head work."""

    logits: torch.Tensor
    heads: dict[HeadKind, torch.Tensor]
    residual: torch.Tensor | None


class ModelAdapter(ABC):
    """Wraps one loaded model; subclasses declare where a family keeps its projections.

    Token layouts differ by family (CLS tokens, per-frame sequences, divided space-time
    attention), so two methods translate between a hooked module's sequence and the
    patch grid: :meth:`patch_tokens` (module output to (B, N, width) in T'H'W' order)
    and :meth:`sequence_mask` (a patch mask to the attention module's key sequence).
    The defaults fit families whose modules see one sequence per clip, special tokens
    first.
    """

    family: str
    # Families whose attention calls Hugging Face's attention interface get the
    # `remove` mode from a registered attention function; others patch their modules.
    attention_interface: bool = True
    # The three projections share one fused module (TimeSformer's qkv).
    fused_qkv: bool = False
    # The model's layers take their batch from the hidden states alone and nothing after
    # the encoder reads the input's batch size: the masked scorers may run the layers
    # below the first masked one on one copy of a clip and repeat its hidden states.
    shares_prefix: bool = True

    def __init__(
        self,
        model: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        spec: ModelSpec | None = None,
        precision: torch.dtype = torch.float32,
    ):
        """``spec`` is None for a model built in memory (training, benchmarks);
        ``precision`` bf16 runs the forward passes under autocast."""
        if precision not in (torch.float32, torch.bfloat16):
            raise ValueError(f"precision must be torch.float32 or torch.bfloat16, got {precision}")
        self.model = model.eval()
        self.precision = precision
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.spec = spec or ModelSpec(checkpoint="(in memory)", family=self.family)

    # --- what a family declares -------------------------------------------------
    @property
    def config(self):
        """The vision encoder's config (X-CLIP nests it in the model's)."""
        return self.model.config

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def num_heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def num_frames(self) -> int:
        """Frames per clip the model expects."""
        return int(getattr(self.config, FAMILIES[self.family].frames_key))

    @property
    def image_size(self) -> int:
        """Square input side in pixels."""
        return int(getattr(self.config, FAMILIES[self.family].size_key))

    @property
    @abstractmethod
    def grid(self) -> TokenGrid: ...

    @property
    @abstractmethod
    def num_special_tokens(self) -> int:
        """Tokens before the patch tokens (CLS and the like) in every layer's sequence."""

    # Where a family keeps its modules: the encoder's layer list, the attention inside a
    # layer, each projection inside the attention and the output projection inside a
    # layer (dotted submodule paths), and the keyword its forward takes the clips by.
    layers_path: str
    attention_path: str
    projection_paths: dict[HeadKind, str]
    output_path: str
    input_name: str = "pixel_values"

    def block(self, layer: int) -> nn.Module:
        """The transformer block whose output is the residual stream after ``layer``."""
        return self.model.get_submodule(self.layers_path)[layer]

    def attention(self, layer: int) -> nn.Module:
        """The module Hugging Face's attention function receives as ``module`` in ``layer``."""
        return self.block(layer).get_submodule(self.attention_path)

    def projection(self, layer: int, kind: HeadKind) -> nn.Module:
        """The module whose output holds all heads' ``kind`` for ``layer`` as (B, N, heads*dim)."""
        return self.attention(layer).get_submodule(self.projection_paths[kind])

    def output_projection(self, layer: int) -> nn.Module:
        """The linear map whose input is ``layer``'s heads' attention outputs, concatenated."""
        return self.block(layer).get_submodule(self.output_path)

    def outputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """What the metrics score, (B, len(class_names)), from preprocessed clips
        (B, T, 3, H, W): class logits here; families scoring text similarities or
        reconstruction override it."""
        return self.model(**{self.input_name: pixels}).logits

    def feature_forward(self, pixels: torch.Tensor) -> torch.Tensor | None:
        """The forward pass features are captured in; ``None`` when it does not give
        :meth:`outputs` (then a second, unhooked pass does)."""
        return self.outputs(pixels)

    def patch_tokens(self, raw: torch.Tensor, kind: str, batch: int) -> torch.Tensor:
        """A hooked module's output to (batch, N, width) patch tokens in T'H'W' order.

        ``kind`` is a head kind (the output of :meth:`projection`) or ``"residual"``
        (the output of :meth:`block`).
        """
        start = self.num_special_tokens
        return self.projection_part(raw, kind)[:, start : start + self.grid.size]

    def projection_part(self, raw: torch.Tensor, kind: str) -> torch.Tensor:
        """``kind``'s slice of a fused q/k/v projection's output (anything else as is)."""
        if self.fused_qkv and kind != "residual":
            return raw.unflatten(-1, (3, -1))[..., HEAD_KINDS.index(kind), :]
        return raw

    def sequence_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, heads, N) patch mask to (B', heads, S): the key sequence of the masked
        attention modules, with special tokens never masked. B' is B times the sequences
        of one clip, batch-major (clip ``b`` owns rows ``b * B' / B`` onward)."""
        specials = self.num_special_tokens
        return torch.nn.functional.pad(mask, (specials, 0), value=False) if specials else mask

    def bias_attention(self, layer: int, bias: KeyBias) -> Callable[[], None]:
        """Make ``layer``'s attention add ``bias`` to its key logits and output zero for
        dead heads; returns the function that undoes it. Only families whose attention
        does not go through Hugging Face's attention interface implement it."""
        raise NotImplementedError(f"{self.family} masks through the attention interface")

    @property
    def has_classes(self) -> bool:
        return FAMILIES[self.family].has_classes

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def class_names(self) -> list[str]:
        """Names of the columns of :meth:`outputs`."""
        id2label = getattr(self.model.config, "id2label", None) or {}
        n = int(self.model.config.num_labels)
        return [str(id2label.get(i, id2label.get(str(i), i))) for i in range(n)]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def flop_count(self) -> FlopCount:
        """FLOPs of one scored forward pass (:meth:`outputs`) of one clip, counted by
        ``FlopCounterMode``, and what one head of each masked attention costs in it.

        SDPA runs its math kernel while counting: the counter does not see inside the
        fused CPU kernel, and the math kernel's matrix products are the same FLOPs.
        """
        frames = torch.zeros(
            (1, self.num_frames, self.image_size, self.image_size, 3), dtype=torch.uint8
        )
        with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
            self.logits(frames)
        # The counter names modules by the class of the outermost module called, then
        # their dotted path below it: the model's own, or a submodule's where a forward
        # calls parts of the model (self-supervised VideoMAE with nothing hidden).
        counts = {
            name.partition(".")[2]: sum(ops.values())
            for name, ops in counter.get_flop_counts().items()
            if "." in name
        }
        names = {module: path for path, module in self.model.named_modules()}

        def count(path: str) -> int:
            while path and path not in counts:
                path = path.partition(".")[2]
            return counts.get(path, 0)

        def heads(layer: int) -> int:
            attention = names[self.attention(layer)]
            output = names[self.output_projection(layer)]
            inside = output.startswith(attention + ".")  # ViViT, X-CLIP, V-JEPA 2
            return count(attention) + (0 if inside else count(output))

        per_head = tuple(heads(layer) // self.num_heads for layer in range(self.num_layers))
        return FlopCount(total=counter.get_total_flops(), head=per_head)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- shared behaviour ---------------------------------------------------------
    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, T, H, W, 3), already resized and cropped, to model input."""
        if frames.shape[1:] != (self.num_frames, self.image_size, self.image_size, 3):
            raise ValueError(
                f"{self.family} expects clips of shape (T={self.num_frames}, "
                f"{self.image_size}, {self.image_size}, 3), got {tuple(frames.shape[1:])}"
            )
        x = frames.to(self.device, torch.float32) / 255.0
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        x = (x - mean) / std
        return x.permute(0, 1, 4, 2, 3).contiguous()

    def autocast(self) -> torch.autocast:
        """bf16 autocast when the adapter's precision is bf16; a no-op in fp32."""
        on = self.precision == torch.bfloat16
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=on)

    @torch.inference_mode()
    def logits(self, frames: torch.Tensor) -> torch.Tensor:
        """Plain forward pass: uint8 frames (B, T, H, W, 3) to :meth:`outputs`, fp32."""
        with self.autocast():
            return self.outputs(self.preprocess(frames)).float()

    def _to_grid(self, patches: torch.Tensor, split_heads: bool) -> torch.Tensor:
        """(B, L, N, D) stacked patch tokens to a view (B, L, heads, T', H', W', dim) or
        (B, L, T', H', W', D); no copy beyond the stack, the store writer makes the layout."""
        g = self.grid
        if patches.shape[2] != g.size:
            raise RuntimeError(
                f"{self.family}: expected {g.size} patch tokens, hook saw {patches.shape[2]}"
            )
        b, n_layers = patches.shape[:2]
        if not split_heads:
            return patches.unflatten(2, (g.frames, g.height, g.width))
        grid = patches.reshape(
            b, n_layers, g.frames, g.height, g.width, self.num_heads, self.head_dim
        )
        return grid.permute(0, 1, 5, 2, 3, 4, 6)

    @contextmanager
    def _hooks(
        self, layers: Sequence[int], kinds: Sequence[HeadKind], residual: bool
    ) -> Iterator[dict[tuple[str, int], torch.Tensor]]:
        """Register read-only hooks that keep each module's raw (B, N, D) output."""
        seen: dict[tuple[str, int], torch.Tensor] = {}

        def keep(name: str, layer: int):
            def hook(_module, _inputs, output):
                seen[(name, layer)] = output[0] if isinstance(output, tuple) else output

            return hook

        handles = []
        try:
            for layer in layers:
                for kind in kinds:
                    module = self.projection(layer, kind)
                    handles.append(module.register_forward_hook(keep(kind, layer)))
                if residual:
                    handles.append(self.block(layer).register_forward_hook(keep("residual", layer)))
            yield seen
        finally:
            for handle in handles:
                handle.remove()

    @contextmanager
    def edited_residual(
        self, layer: int, edit: Callable[[torch.Tensor], torch.Tensor], batch: int
    ) -> Iterator[None]:
        """Replace the patch tokens of the residual stream after ``layer`` by
        ``edit(tokens)``, tokens (batch, N, width) in T'H'W' order, for forward passes of
        ``batch`` clips; special tokens (CLS and the like) pass unchanged. Where each
        patch token sits in the block's output is found by running :meth:`patch_tokens`
        on the output's own row numbers, so every family's layout is handled as it is
        read."""

        def hook(_module, _inputs, output):
            raw = output[0] if isinstance(output, tuple) else output
            rows = torch.arange(raw[..., 0].numel(), device=raw.device)
            at = self.patch_tokens(rows.view(*raw.shape[:-1], 1), "residual", batch)[..., 0]
            flat = raw.reshape(-1, raw.shape[-1])
            new = edit(flat[at].float()).to(raw.dtype)
            edited = flat.clone()
            edited[at.reshape(-1)] = new.reshape(-1, raw.shape[-1])
            edited = edited.view_as(raw)
            return (edited, *output[1:]) if isinstance(output, tuple) else edited

        handle = self.block(layer).register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    @torch.inference_mode()
    def capture(
        self,
        frames: torch.Tensor,
        layers: Sequence[int] | None = None,
        kinds: Sequence[HeadKind] = ("keys",),
        residual: bool = True,
    ) -> Capture:
        """One forward pass returning logits and the requested activations (fp32)."""
        layers = list(range(self.num_layers)) if layers is None else list(layers)
        bad = [layer for layer in layers if not 0 <= layer < self.num_layers]
        if bad:
            raise ValueError(f"layers {bad} out of range for a {self.num_layers}-layer model")
        pixels = self.preprocess(frames)
        with self._hooks(layers, kinds, residual) as seen, self.autocast():
            logits = self.feature_forward(pixels)
        if logits is None:
            with self.autocast():
                logits = self.outputs(pixels)
        logits = logits.float()
        expected = len(layers) * (len(kinds) + int(residual))
        if len(seen) != expected:
            raise RuntimeError(
                f"{self.family}: only {len(seen)} of {expected} hooks fired; the model's "
                "forward bypasses the declared projection modules"
            )

        def stacked(name: str, split_heads: bool) -> torch.Tensor:
            batch = len(frames)
            tokens = [self.patch_tokens(seen[(name, layer)], name, batch) for layer in layers]
            return self._to_grid(torch.stack(tokens, 1).float(), split_heads)

        heads = {kind: stacked(kind, True) for kind in kinds}
        res = stacked("residual", False) if residual else None
        return Capture(logits=logits, heads=heads, residual=res)
