"""`KTMModel`: a LoRA-adapted causal LM that reads K-times-merged prompt embeddings."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from .base_models import DEFAULT_MODEL, load_base
from .config import KTMConfig
from .errors import KTMError
from .io_utils import atomic_dir, read_json, write_json_atomic
from .merger import build_merger, widen_context
from .packing import CompressedBatch, pack
from .sampling import SamplingConfig, choose_next

CONFIG_NAME = "ktm_config.json"
MERGER_NAME = "merger.safetensors"
ADAPTER_DIR = "adapter"
RECONSTRUCT_MARKER = "\nRepeat the text above:\n"


def _linear_module_names(causal_lm: nn.Module) -> list[str]:
    """Suffix names of every linear layer inside the decoder (q_proj, …, c_attn, …)."""
    from transformers.pytorch_utils import Conv1D

    decoder = getattr(causal_lm, causal_lm.base_model_prefix)
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in decoder.named_modules()
        if isinstance(module, (nn.Linear, Conv1D))
    }
    return sorted(names)


def _module_name(root: nn.Module, target: nn.Module) -> str:
    for name, module in root.named_modules():
        if module is target:
            return name
    raise KTMError("could not find the model's output layer")  # pragma: no cover


def _base_info(causal_lm: nn.Module) -> dict:
    cfg = causal_lm.config.get_text_config()
    return {
        "model_type": cfg.model_type,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": getattr(cfg, "num_hidden_layers", None),
        "vocab_size": causal_lm.get_input_embeddings().weight.shape[0],
    }


def checkpoint_folder(path: str | Path) -> Path:
    """A saved model folder, or a run folder whose ``model/`` holds one."""
    path = Path(path)
    return path / "model" if (path / "model" / CONFIG_NAME).is_file() else path


def _check_base(path: Path, expected: dict, actual: dict, name: str) -> None:
    """Refuse a checkpoint made for a base model of another shape."""
    for key in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size"):
        if key in expected and expected[key] != actual.get(key):
            raise KTMError(
                f"checkpoint {path} was trained on a base model with {key} "
                f"{expected[key]}, but {name!r} has {actual.get(key)}; load it with its own base"
            )


@functools.cache
def _cache_argument(decoder_class: type) -> str:
    """The decoder's name for its KV cache: transformers 5.24 renamed ``past_key_values`` to
    ``cache`` (the old name is removed in 5.40); earlier 5.x releases know only the old one."""
    params = inspect.signature(decoder_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@contextmanager
def quiet_peft():
    """Silence peft's notes that need no action from the user: the output layer's LoRA is not
    tied to the (frozen) input embedding, and GPT-2-style Conv1D layers beside a Linear head
    get each their own weight layout."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out is set to.*")
        yield


def _reads_position_ids(decoder_class: type) -> bool:
    """Whether the decoder places tokens by ``position_ids`` (ALiBi models such as BLOOM and
    MPT take positions from the attention mask instead)."""
    return "position_ids" in inspect.signature(decoder_class.forward).parameters


class KTMModel(nn.Module):
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
        if config.positions == "spread" and not _reads_position_ids(type(decoder)):
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

            targets = config.lora_targets or _linear_module_names(causal_lm)
            if config.lora_lm_head:
                head = _module_name(causal_lm, causal_lm.get_output_embeddings())
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
        merger = build_merger(config, _base_info(causal_lm)["hidden_size"])  # fp32, trainable
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
        self, prompts: Sequence[str], suffixes: Sequence[str] | None = None
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of the compressed part (with the tokenizer's special tokens) and suffix."""
        if isinstance(prompts, str):
            raise KTMError("prompts must be a list of strings, not a single string")
        if suffixes is not None and len(suffixes) != len(prompts):
            raise KTMError(f"got {len(prompts)} prompts but {len(suffixes)} suffixes")
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise KTMError(f"prompt {i} is a {type(p).__name__}, not a string")
        prompt_ids = self.tokenize(prompts, special=True)
        suffix_ids = self.tokenize(suffixes) if suffixes is not None else [[] for _ in prompts]
        for i, (p, s) in enumerate(zip(prompts, suffix_ids)):
            if not p.strip() and not s:
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
    ) -> CompressedBatch:
        """Merge token ids into a left-padded batch of embeddings (see :func:`ktm.packing.pack`).

        A token-reduction baseline (``config.reduction``) first cuts each prompt to its
        budget; ``tokens_in`` still counts the prompt as given.
        """
        reduced = self.reduce_ids(prompt_ids)
        batch = pack(
            self.embed,
            self.merger,
            self.k,
            reduced,
            suffix_ids,
            answer_ids,
            self.device,
            self.config.positions,
        )
        if reduced is not prompt_ids:
            suffixes = suffix_ids if suffix_ids is not None else [[] for _ in prompt_ids]
            batch.tokens_in = [len(p) + len(s) for p, s in zip(prompt_ids, suffixes)]
        return batch

    def reduce_ids(self, prompt_ids: Sequence[Sequence[int]]) -> Sequence[Sequence[int]]:
        """``prompt_ids`` cut as ``config.reduction`` says (unchanged without one)."""
        how = self.config.reduction
        if how is None:
            return prompt_ids
        from .reduction import reduce_ids, self_information

        def scores(ids):  # the base model without the adapter, as Selective Context scores
            with _eval_mode(self), _adapters_off(self.lm):
                return self_information(self.causal_lm, ids)

        return reduce_ids(prompt_ids, how, self.config.reduction_k, scores)

    def compress(
        self, prompts: Sequence[str], suffixes: Sequence[str] | None = None
    ) -> CompressedBatch:
        """Compress prompts (and append uncompressed suffixes).

        Returns a :class:`CompressedBatch`: ``.embeds`` (B, N, d), ``.attention_mask`` (B, N),
        ``.tokens_in`` / ``.tokens_out`` per prompt.
        """
        return self.compress_ids(*self.encode_prompts(prompts, suffixes))

    # ----------------------------------------------------------------- forward passes
    def hidden_states(self, batch: CompressedBatch, past_key_values=None, use_cache: bool = False):
        """Run the decoder. Returns (last hidden states (B, N, d), cache or None)."""
        decoder = self.decoder
        out = decoder(
            inputs_embeds=batch.embeds,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=use_cache,
            **{_cache_argument(type(decoder)): past_key_values},
        )
        if not use_cache:
            return out.last_hidden_state, None
        cache = getattr(out, "cache", None)
        return out.last_hidden_state, (cache if cache is not None else out.past_key_values)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, d) -> (…, V) vocabulary logits."""
        return self.causal_lm.get_output_embeddings()(hidden)

    def answer_states(
        self,
        prompt_ids: Sequence[Sequence[int]],
        answer_ids: Sequence[Sequence[int]],
        suffix_ids: Sequence[Sequence[int]] | None = None,
        all_layers: bool = False,
        align_k: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states at the M positions that predict answer tokens, and those tokens.

        Returns (states, targets): states (L, A + M, d) — every layer's output if
        ``all_layers``, else only the final (normed) one, L = 1 — and targets (M,) long.
        With ``align_k``, the A states first are those at the end of each K-block of the
        prompt (the compressed position of a K = ``align_k`` model, or the block's last
        token in a less compressed one), so that models of different K line up.
        """
        batch = self.compress_ids(prompt_ids, suffix_ids, answer_ids)
        out = self.decoder(
            inputs_embeds=batch.embeds,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
            output_hidden_states=all_layers,
        )
        layers = out.hidden_states[1:] if all_layers else (out.last_hidden_state,)
        rows, cols, targets = [], [], []
        if align_k is not None:
            for i, p in enumerate(prompt_ids):
                first = batch.answer_start[i] - batch.tokens_out[i]  # row's first position
                for j in range(-(-len(p) // align_k)):
                    end = min(align_k * (j + 1), len(p))  # tokens covered up to this block
                    rows.append(i)
                    cols.append(first + -(-end // self.k) - 1)
        for i, (start, ans) in enumerate(zip(batch.answer_start, batch.answer_ids)):
            rows += [i] * len(ans)
            cols += range(start - 1, start - 1 + len(ans))
            targets += ans
        dev = batch.embeds.device
        r, c = torch.tensor(rows, device=dev), torch.tensor(cols, device=dev)
        return torch.stack([h[r, c] for h in layers]), torch.tensor(targets, device=dev)

    def answer_nll(
        self,
        prompt_ids: Sequence[Sequence[int]],
        answer_ids: Sequence[Sequence[int]],
        suffix_ids: Sequence[Sequence[int]] | None = None,
    ) -> torch.Tensor:
        """Summed cross entropy of the answer tokens (a scalar).

        Vocabulary logits are computed only at the positions that predict answer tokens.
        """
        states, targets = self.answer_states(prompt_ids, answer_ids, suffix_ids)
        return F.cross_entropy(self.head(states[-1]).float(), targets, reduction="sum")

    def reconstruction_targets(
        self, prompt_ids: Sequence[Sequence[int]], max_tokens: int | None = None
    ) -> tuple[list[list[int]], list[list[int]]]:
        """(suffixes, answers) that ask the model to repeat each compressed prompt.

        The suffix is the fixed marker :data:`RECONSTRUCT_MARKER`; the answer is the prompt's
        own tokens (its first ``max_tokens``), as in-context autoencoders train.
        """
        marker = self.tokenize([RECONSTRUCT_MARKER])[0]
        answers = [list(p[:max_tokens] if max_tokens else p) for p in prompt_ids]
        return [marker] * len(prompt_ids), answers

    def forward(
        self,
        prompt_ids: Sequence[Sequence[int]],
        answer_ids: Sequence[Sequence[int]],
        suffix_ids: Sequence[Sequence[int]] | None = None,
        reconstruct: bool = False,
        reconstruct_max_tokens: int | None = None,
        teacher: KTMModel | None = None,
        distill_blocks: bool = False,
    ) -> torch.Tensor:
        """Training losses as a (3,) tensor of sums over answer tokens:
        [answer cross entropy, reconstruction cross entropy, distillation].

        ``reconstruct`` adds a pass that regenerates each compressed prompt from its merged
        prefix. ``teacher`` (e.g. a K = 1 model) adds distillation: every layer's hidden state
        (squared error relative to the teacher's mean square) at the answer positions — and,
        with ``distill_blocks``, at every compressed position against the teacher's state at
        the last token of the same block — plus the KL divergence of the answer
        distributions. Unused entries are 0.
        """
        align = self.k if (teacher is not None and distill_blocks) else None
        states, targets = self.answer_states(
            prompt_ids, answer_ids, suffix_ids, teacher is not None, align
        )
        m = targets.shape[0]
        logits = self.head(states[-1, -m:]).float()
        task = F.cross_entropy(logits, targets, reduction="sum")
        zero = torch.zeros_like(task)
        recon = distill = zero
        if reconstruct:
            marker, recon_targets = self.reconstruction_targets(prompt_ids, reconstruct_max_tokens)
            recon = self.answer_nll(prompt_ids, recon_targets, marker)
        if teacher is not None:
            with torch.no_grad(), _eval_mode(teacher):
                t_states, _ = teacher.answer_states(prompt_ids, answer_ids, suffix_ids, True, align)
                t_logits = teacher.head(t_states[-1, -m:]).float()
            scale = t_states.float().pow(2).mean(-1, keepdim=True).clamp_min(1e-6)
            err = ((states.float() - t_states.float()).pow(2) / scale).mean(-1).mean(0)
            hidden = err.mean() * m  # per answer token, like the other entries
            kl = F.kl_div(
                logits.log_softmax(-1), t_logits.log_softmax(-1), log_target=True, reduction="sum"
            )
            distill = hidden + kl
        return torch.stack([task, recon, distill])

    def loss(
        self,
        prompts: Sequence[str],
        answers: Sequence[str],
        suffixes: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Mean answer-token cross entropy for text inputs."""
        prompt_ids, suffix_ids = self.encode_prompts(prompts, suffixes)
        answer_ids = self.encode_answers(answers)
        return self.answer_nll(prompt_ids, answer_ids, suffix_ids) / sum(map(len, answer_ids))

    @torch.no_grad()
    def next_token_logits(
        self, prompts: Sequence[str], suffixes: Sequence[str] | None = None
    ) -> torch.Tensor:
        """(B, V) logits of the token after each prompt."""
        with _eval_mode(self):
            hidden, _ = self.hidden_states(self.compress(prompts, suffixes))
            return self.head(hidden[:, -1]).float()

    # ----------------------------------------------------------------- generation
    def positions_needed(self, prompt_tokens: int, suffix_tokens: int, new_tokens: int) -> int:
        """Positions a prompt of ``prompt_tokens`` compressed + ``suffix_tokens`` kept tokens
        takes with ``new_tokens`` generated (every prompt token counts with ``spread``)."""
        spread = self.config.positions == "spread"
        prefix = prompt_tokens if spread else -(-prompt_tokens // self.k)
        return prefix + suffix_tokens + new_tokens

    def _check_length(self, batch: CompressedBatch, new_tokens: int) -> None:
        limit = self.max_positions
        used = int(batch.position_ids[:, -1].max()) + 1 if batch.position_ids.numel() else 0
        need = used + new_tokens
        if limit is not None and need > limit:
            raise KTMError(
                f"prompt needs {need} positions ({used} for the prompt + {new_tokens} new) but "
                f"the model has {limit}; shorten the prompt"
                + (" or raise K" if self.config.positions == "compact" else "")
            )

    @torch.no_grad()
    def generate_ids(
        self,
        batch: CompressedBatch,
        sampling: SamplingConfig | None = None,
        on_step: Callable[[list[int]], None] | None = None,
    ) -> list[list[int]]:
        """Generate from a compressed batch with a KV cache; stops each row at EOS.

        Returns the new token ids per row, without the EOS. ``on_step`` (for streaming) gets
        each step's B new token ids as they are chosen (EOS again for finished rows).
        """
        cfg = sampling or SamplingConfig()
        self._check_length(batch, cfg.max_new_tokens)
        gen = None
        if cfg.seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        eos = self.tokenizer.eos_token_id
        b = batch.embeds.shape[0]
        with _eval_mode(self):
            hidden, cache = self.hidden_states(batch, use_cache=True)
            mask, pos = batch.attention_mask, batch.position_ids[:, -1:]
            out = torch.empty(b, 0, dtype=torch.long, device=self.device)
            done = torch.zeros(b, dtype=torch.bool, device=self.device)
            for _ in range(cfg.max_new_tokens):
                nxt = choose_next(self.head(hidden[:, -1]).float(), cfg, gen)
                if eos is not None:
                    nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
                    done |= nxt == eos
                out = torch.cat([out, nxt[:, None]], dim=1)
                if on_step is not None:
                    on_step(nxt.tolist())
                if bool(done.all()):
                    break
                mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
                pos = pos + 1
                step = CompressedBatch(self.embed(nxt[:, None]), mask, pos, [], [])
                hidden, cache = self.hidden_states(step, past_key_values=cache, use_cache=True)
        result = []
        for row in out.tolist():
            result.append(row[: row.index(eos)] if eos is not None and eos in row else row)
        return result

    def generate(
        self,
        prompts: Sequence[str],
        suffixes: Sequence[str] | None = None,
        max_new_tokens: int = 32,
        **sampling,
    ) -> list[str]:
        """Compress the prompts and generate a continuation for each (greedy by default).

        ``sampling`` takes the fields of :class:`SamplingConfig` (do_sample, temperature,
        top_k, top_p, seed).
        """
        cfg = SamplingConfig(max_new_tokens=max_new_tokens, **sampling)
        ids = self.generate_ids(self.compress(prompts, suffixes), cfg)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    @torch.no_grad()
    def classify(
        self,
        prompts: Sequence[str],
        choices: Sequence[str],
        suffixes: Sequence[str] | None = None,
    ) -> list[int]:
        """Index of the most likely choice for each prompt (log-likelihood of its tokens)."""
        choice_ids = self.encode_answers(choices)
        firsts = [c[0] for c in choice_ids]
        prompt_ids, suffix_ids = self.encode_prompts(prompts, suffixes)
        with _eval_mode(self):
            if len(set(firsts)) == len(firsts):  # the first token decides: one forward pass
                hidden, _ = self.hidden_states(self.compress_ids(prompt_ids, suffix_ids))
                logits = self.head(hidden[:, -1]).float()
                return logits[:, firsts].argmax(dim=-1).tolist()
            scores = torch.empty(len(prompts), len(choices))
            for j, ans in enumerate(choice_ids):
                for i in range(len(prompts)):
                    nll = self.answer_nll(prompt_ids[i : i + 1], [ans], suffix_ids[i : i + 1])
                    scores[i, j] = -nll
            return scores.argmax(dim=-1).tolist()

    # ----------------------------------------------------------------- artifacts
    def save_pretrained(self, path: str | Path) -> None:
        """Write the config, the merger (safetensors) and the PEFT adapter to ``path``."""
        from safetensors.torch import save_file

        with atomic_dir(path) as tmp:
            write_json_atomic(
                tmp / CONFIG_NAME,
                {
                    "ktm_version": __version__,
                    "base_model": self.base_model,
                    "base_model_info": _base_info(self.causal_lm),
                    "config": self.config.to_dict(),
                },
            )
            state = {k: v.detach().contiguous() for k, v in self.merger.state_dict().items()}
            save_file(state, str(tmp / MERGER_NAME), metadata={"format": "pt"})
            if hasattr(self.lm, "peft_config"):
                self.lm.save_pretrained(str(tmp / ADAPTER_DIR), save_embedding_layers=False)

    def init_from(self, path: str | Path, lora_only: bool = False) -> None:
        """Start from the merger and LoRA weights of a saved model (e.g. a pre-trained merger).

        The saved model must match this one: same base model shape, K, merger and LoRA shape.
        With ``lora_only`` (a curriculum over K), only the LoRA is taken, so K and the merger
        may differ; the merger keeps its initialisation.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from .training.checkpoint import WEIGHTS, load_trainable

        path = Path(path)
        if (path / WEIGHTS).is_file():  # a training checkpoint: run/checkpoints/step-N
            run_config = path.parent.parent / "config.json"
            if not run_config.is_file():
                raise KTMError(f"checkpoint {path} has no run config at {run_config}")
            other = KTMConfig.from_dict(read_json(run_config, "run config")["ktm"])
            self._check_same_shape(path, other, widen=False, lora_only=lora_only)
            load_trainable(path, self, lora_only)
            return
        path = checkpoint_folder(path)
        meta = read_json(path / CONFIG_NAME, "ktm config")
        _check_base(
            path, meta.get("base_model_info", {}), _base_info(self.causal_lm), self.base_model
        )
        other = KTMConfig.from_dict(meta["config"])
        self._check_same_shape(path, other, widen=True, lora_only=lora_only)
        if not lora_only:
            _load_merger(self.merger, path / MERGER_NAME, widen_context)
        if self.config.lora_r > 0:
            from peft import set_peft_model_state_dict

            file = path / ADAPTER_DIR / "adapter_model.safetensors"
            try:
                state = load_file(str(file))
            except (SafetensorError, OSError) as e:
                raise KTMError(f"adapter weights {file} are missing or unreadable: {e}") from None
            result = set_peft_model_state_dict(self.lm, state)
            if result.unexpected_keys:
                raise KTMError(
                    f"adapter {file} does not fit this model: {result.unexpected_keys[:2]}"
                )

    def _check_same_shape(
        self, path: Path, other: KTMConfig, widen: bool, lora_only: bool = False
    ) -> None:
        """``other`` (a saved model's config) must have this model's K, merger and LoRA shape;
        with ``widen``, its merger may read less context (see :func:`widen_context`); with
        ``lora_only``, only the LoRA shape and the positions must match."""
        mine, theirs = self.config.merger_context, other.merger_context
        if not lora_only and (theirs > mine or (theirs != mine and not widen)):
            how = "" if widen else " (a training checkpoint must match exactly)"
            raise KTMError(
                f"{path} was trained with merger_context={theirs} but this model has "
                f"merger_context={mine}{how}; a merger can only start from one with less context"
            )
        merger_keys = () if lora_only else ("k", "merger", "hidden_factor", "merger_norm")
        for key in (
            *merger_keys,
            "positions",
            "lora_r",
            "lora_targets",
            "lora_lm_head",
        ):
            if getattr(other, key) != getattr(self.config, key):
                raise KTMError(
                    f"{path} was trained with {key}={getattr(other, key)!r} but this model has "
                    f"{key}={getattr(self.config, key)!r}; use a matching checkpoint or options"
                )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        base_model: str | None = None,
        dtype: torch.dtype | None = None,
        trainable: bool = False,
        causal_lm: nn.Module | None = None,
        tokenizer=None,
    ) -> "KTMModel":
        """Load a saved model. ``base_model`` overrides the saved base (same shape only).

        ``causal_lm``/``tokenizer`` pass an already-loaded base model instead of a name.
        """
        path = Path(path)
        if not path.is_dir():
            raise KTMError(f"checkpoint folder not found: {path}")
        meta = read_json(path / CONFIG_NAME, "ktm config")
        if not isinstance(meta, dict) or "config" not in meta or "base_model" not in meta:
            raise KTMError(f"{path / CONFIG_NAME} is not a ktm config (no 'config'/'base_model')")
        config = KTMConfig.from_dict(meta["config"])
        name = base_model or meta["base_model"]
        if causal_lm is None:
            causal_lm, tokenizer = load_base(name, dtype)
        elif tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        actual = _base_info(causal_lm)
        _check_base(path, meta.get("base_model_info", {}), actual, name)
        for p in causal_lm.parameters():
            p.requires_grad_(False)
        lm = causal_lm
        if config.lora_r > 0:
            from peft import PeftModel

            adapter = path / ADAPTER_DIR
            if not (adapter / "adapter_config.json").is_file():
                raise KTMError(f"adapter missing: {adapter}/adapter_config.json")
            try:
                with quiet_peft():
                    lm = PeftModel.from_pretrained(causal_lm, str(adapter), is_trainable=trainable)
            except Exception as e:  # peft raises many types for a broken adapter
                raise KTMError(f"could not load adapter {adapter}: {e}") from None
        merger = build_merger(config, actual["hidden_size"])
        _load_merger(merger, path / MERGER_NAME)
        merger.requires_grad_(trainable)
        return cls(lm, tokenizer, merger, config, name)


def _load_merger(merger: nn.Module, file: Path, adapt: Callable | None = None) -> None:
    """Load ``file`` into ``merger`` strictly, after ``adapt(state, merger)`` if given."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.is_file():
        raise KTMError(f"merger weights missing: {file}")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise KTMError(f"merger weights {file} are unreadable or corrupt: {e}") from None
    if adapt is not None:
        state = adapt(state, merger)
    try:
        merger.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise KTMError(f"merger weights {file} do not match the config: {first}") from None


@contextmanager
def _adapters_off(lm: nn.Module) -> Iterator[None]:
    """The bare base model inside the block (a no-op without LoRA)."""
    if hasattr(lm, "disable_adapter"):
        with lm.disable_adapter():
            yield
    else:
        yield


class _eval_mode:
    """Context manager: eval mode inside (no LoRA dropout), previous mode restored after."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.was_training = self.module.training
        self.module.eval()

    def __exit__(self, *exc) -> None:
        self.module.train(self.was_training)
