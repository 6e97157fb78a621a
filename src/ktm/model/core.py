"""`KTMModel`: a LoRA-adapted causal LM that reads K-times-merged prompt embeddings.

This file holds assembly and compression; the losses, generation and save / load are mixed in
from :mod:`.losses`, :mod:`.generation` and :mod:`.artifacts`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ..config import KTMConfig
from ..errors import KTMError
from ..expansion import budget_positions as positions_within
from ..merger import build_merger
from ..packing import CompressedBatch, pack
from .artifacts import ArtifactsMixin, base_info
from .base_models import DEFAULT_MODEL, load_base
from .generation import GenerationMixin
from .lm_utils import (
    adapters_off,
    cache_argument,
    eval_mode,
    linear_module_names,
    module_name,
    quiet_peft,
    reads_position_ids,
)
from .losses import LossesMixin
from .prompt_states import check_layers, merger_states
from .selective import SelectiveMixin

Prompt = str | Sequence[int]  # text to compress, or its token ids


class KTMModel(LossesMixin, GenerationMixin, SelectiveMixin, ArtifactsMixin, nn.Module):
    """Merger + LoRA-adapted causal LM.

    Build one with :meth:`from_base` (new, trainable) or :meth:`from_pretrained` (saved).
    ``forward`` returns the summed answer-token cross entropy, for training engines.
    """

    def __init__(
        self, lm: nn.Module, tokenizer, merger: nn.Module, config: KTMConfig, base_model: str
    ) -> None:
        super().__init__()
        self.lm = lm
        self.merger = merger
        self.tokenizer = tokenizer
        self.config = config
        self.base_model = base_model

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_base(
        cls,
        base_model: str = DEFAULT_MODEL,
        config: KTMConfig | None = None,
        dtype: torch.dtype | None = None,
    ) -> "KTMModel":
        """A fresh model: ``base_model`` (name, folder or hub id) + new LoRA + new merger."""
        config = config or KTMConfig()
        causal_lm, tokenizer = load_base(base_model, dtype)
        return cls._assemble(causal_lm, tokenizer, config, base_model)

    @classmethod
    def from_model(
        cls, causal_lm: nn.Module, tokenizer, config: KTMConfig | None = None, name: str = "custom"
    ) -> "KTMModel":
        """Wrap an already-loaded transformers causal LM (e.g. a tiny test model)."""
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls._assemble(causal_lm, tokenizer, config or KTMConfig(), name)

    @classmethod
    def _assemble(cls, causal_lm, tokenizer, config: KTMConfig, name: str) -> "KTMModel":
        decoder = getattr(causal_lm, causal_lm.base_model_prefix)
        if config.positions == "spread" and not reads_position_ids(type(decoder)):
            raise KTMError(
                f"positions='spread' needs a model that reads position ids, but "
                f"{causal_lm.config.model_type!r} takes positions from its attention mask "
                f"(ALiBi); use positions='compact' (--positions compact)"
            )
        for p in causal_lm.parameters():
            p.requires_grad_(False)
        lm = causal_lm
        if config.lora_r > 0:
            from peft import LoraConfig, get_peft_model

            targets = config.lora_targets or linear_module_names(causal_lm)
            if config.lora_lm_head:
                head = module_name(causal_lm, causal_lm.get_output_embeddings())
                targets = sorted(set(targets) | {head.rsplit(".", 1)[-1]})
            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=targets,
            )
            try:
                with quiet_peft():
                    lm = get_peft_model(causal_lm, lora)
            except ValueError as e:
                raise KTMError(f"LoRA targets {targets} do not fit this model: {e}") from None
        merger = build_merger(config, base_info(causal_lm)["hidden_size"])  # fp32, trainable
        if config.merger_layers and config.k > 1:
            check_layers(getattr(causal_lm, causal_lm.base_model_prefix), config.merger_layers)
        return cls(lm, tokenizer, merger, config, name)

    # ----------------------------------------------------------------- parts
    @property
    def causal_lm(self) -> nn.Module:
        """The transformers model (with LoRA layers injected, if any)."""
        return self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm

    @property
    def decoder(self) -> nn.Module:
        lm = self.causal_lm
        return getattr(lm, lm.base_model_prefix)

    @property
    def device(self) -> torch.device:
        return self.causal_lm.get_input_embeddings().weight.device

    @property
    def k(self) -> int:
        return self.config.k

    @property
    def max_positions(self) -> int | None:
        cfg = self.causal_lm.config.get_text_config()
        return getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)

    @contextmanager
    def training_attention(self) -> Iterator[None]:
        """Attention kernel for training, restored afterwards.

        With bf16 weights on CPU, eager attention trains ~1.5x faster than SDPA, whose bf16
        backward is slow there (measured: 19% of a K = 4 step); elsewhere nothing changes.
        """
        lm = self.causal_lm
        before = getattr(lm.config, "_attn_implementation", None)
        switch = (
            self.device.type == "cpu"
            and self.causal_lm.get_input_embeddings().weight.dtype == torch.bfloat16
            and before == "sdpa"
            and hasattr(lm, "set_attn_implementation")
        )
        if switch:
            lm.set_attn_implementation("eager")
        try:
            yield
        finally:
            if switch:
                lm.set_attn_implementation(before)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(…,) long -> (…, d): the base model's input embedding (frozen)."""
        return self.causal_lm.get_input_embeddings()(ids)

    # ----------------------------------------------------------------- tokenizing
    def tokenize(self, texts: Sequence[str], special: bool = False) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(list(texts), add_special_tokens=special)["input_ids"]

    def encode_prompts(
        self, prompts: Sequence[Prompt], suffixes: Sequence[str] | None = None
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of the compressed part (with the tokenizer's special tokens) and suffix.

        A prompt given as a sequence of token ids (e.g. the kept tokens of a token-budget
        baseline, :mod:`ktm.tasks.token_budget`) is read as it is.
        """
        if isinstance(prompts, str):
            raise KTMError("prompts must be a list of strings, not a single string")
        if suffixes is not None and len(suffixes) != len(prompts):
            raise KTMError(f"got {len(prompts)} prompts but {len(suffixes)} suffixes")
        for i, p in enumerate(prompts):
            ids = isinstance(p, (list, tuple)) and all(
                isinstance(t, int) and not isinstance(t, bool) for t in p
            )
            if not isinstance(p, str) and not ids:
                raise KTMError(
                    f"prompt {i} is a {type(p).__name__}, not a string or a list of token ids"
                )
        texts = iter(self.tokenize([p for p in prompts if isinstance(p, str)], special=True))
        prompt_ids = [next(texts) if isinstance(p, str) else list(p) for p in prompts]
        suffix_ids = self.tokenize(suffixes) if suffixes is not None else [[] for _ in prompts]
        for i, (p, s) in enumerate(zip(prompts, suffix_ids)):
            if not (p.strip() if isinstance(p, str) else p) and not s:
                raise KTMError(f"prompt {i} is empty; give some text to compress")
        return prompt_ids, suffix_ids

    def encode_answers(self, answers: Sequence[str]) -> list[list[int]]:
        """Answer token ids followed by EOS, so the model learns to stop."""
        eos = self.tokenizer.eos_token_id
        return [ids + ([eos] if eos is not None else []) for ids in self.tokenize(answers)]

    # ----------------------------------------------------------------- compression
    def compress_ids(
        self,
        prompt_ids: Sequence[Sequence[int]],
        suffix_ids: Sequence[Sequence[int]] | None = None,
        answer_ids: Sequence[Sequence[int]] | None = None,
        budget: float | None = None,
        budget_positions: int | None = None,
        raw: Sequence[Sequence[bool] | None] | None = None,
    ) -> CompressedBatch:
        """Merge token ids into a left-padded batch of embeddings (see :func:`ktm.packing.pack`),
        keeping the highest-ranked tokens raw within a budget (``config.budget``, or
        ``budget`` / ``budget_positions`` here; see :meth:`raw_tokens`), or the tokens
        ``raw`` marks, per prompt, when given."""
        pooled = self.k > 1 and self.config.merger_pool == "select"
        scores = self.token_scores(prompt_ids, suffix_ids) if pooled else None
        if raw is None:
            raw = self.raw_tokens(prompt_ids, budget, budget_positions, scores, suffix_ids)
        return pack(
            self.embed,
            self.merger,
            self.k,
            prompt_ids,
            suffix_ids,
            answer_ids,
            self.device,
            self.config.positions,
            raw,
            scores,
            merger_states(self, prompt_ids),
        )

    @contextmanager
    def base_lm(self) -> Iterator[nn.Module]:
        """The bare base causal LM (no adapter, eval mode) inside the block, e.g. to score
        tokens by their self-information as Selective Context does."""
        with eval_mode(self), adapters_off(self.lm):
            yield self.causal_lm

    def compress(
        self,
        prompts: Sequence[Prompt],
        suffixes: Sequence[str] | None = None,
        budget: float | None = None,
        budget_positions: int | None = None,
    ) -> CompressedBatch:
        """Compress prompts (and append uncompressed suffixes).

        Returns a :class:`CompressedBatch`: ``.embeds`` (B, N, d), ``.attention_mask`` (B, N),
        ``.tokens_in`` / ``.tokens_out`` per prompt, ``.kept`` (the prompt tokens kept raw).
        """
        prompt_ids, suffix_ids = self.encode_prompts(prompts, suffixes)
        return self.compress_ids(prompt_ids, suffix_ids, None, budget, budget_positions)

    # ----------------------------------------------------------------- forward passes
    def hidden_states(self, batch: CompressedBatch, past_key_values=None, use_cache: bool = False):
        """Run the decoder. Returns (last hidden states (B, N, d), cache or None)."""
        decoder = self.decoder
        out = decoder(
            inputs_embeds=batch.embeds,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=use_cache,
            **{cache_argument(type(decoder)): past_key_values},
        )
        if not use_cache:
            return out.last_hidden_state, None
        cache = getattr(out, "cache", None)
        return out.last_hidden_state, (cache if cache is not None else out.past_key_values)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, d) -> (…, V) vocabulary logits."""
        return self.causal_lm.get_output_embeddings()(hidden)

    def positions_needed(
        self,
        prompt_tokens: int,
        suffix_tokens: int,
        new_tokens: int,
        budget: float | None = None,
        budget_positions: int | None = None,
    ) -> int:
        """Positions a prompt of ``prompt_tokens`` compressed + ``suffix_tokens`` kept tokens
        takes with ``new_tokens`` generated (every prompt token counts with ``spread``; with
        selective expansion, its whole budget)."""
        if self.config.positions == "spread":
            return prompt_tokens + suffix_tokens + new_tokens
        if budget is None and budget_positions is None:
            budget = self.config.budget
        prefix = positions_within(prompt_tokens, self.k, budget, budget_positions)
        return prefix + suffix_tokens + new_tokens
