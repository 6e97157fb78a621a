"""Task-agnostic merger pre-training: learn to read merged prefixes by regenerating text.

Plain text is cut into chunks of a fixed number of tokens; each chunk is compressed and the
model is trained to repeat it after the marker :data:`ktm.model.RECONSTRUCT_MARKER` (as
in-context autoencoders do). The result is an ordinary ktm model folder that any task run on
the same base model and K starts from (``ktm train --init-from``).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config import KTMConfig
from ..distributed import process_state
from ..errors import KTMError
from ..fields import option
from ..model import KTMModel, load_tokenizer
from ..training import TrainConfig, train
from ..training.checkpoint import list_checkpoints
from ..training.config import DEFAULT_LR
from .corpus import CORPORA
from .data import DataConfig
from .lookup_examples import mix_lookup
from .options import dtype_option, ktm_part, model_option, train_part
from .pretrain_text import pretraining_chunks, reconstruction_examples, reconstruction_nll
from .run_folder import RunFolder, check_dtype, run_dict, run_from_dict
from .start import init_from

MANY_PASSES = 4  # pre-training passes over its text above which a run gets a note
K_WARMUP_STEPS = 40  # at most, per smaller K before the pre-training proper (curriculum over K)


def k_ladder(k: int) -> list[int]:
    """The smaller K a pre-training at ``k`` warms up with: 2, 4, 8, … below ``k``."""
    ladder, step = [], 2
    while step < k:
        ladder.append(step)
        step *= 2
    return ladder


@dataclass
class PretrainConfig:
    """Merger pre-training by reconstruction.

    The text comes from ``texts`` (plain-text or JSONL files) and/or, with ``data``, from a
    task's training prompts (labels unused): the prompts a task run will compress. The task's
    prompts come first, so the held-out chunks are the task's own when there is a task.

    ``k_warmup`` (default: 2, 4, … below K) are smaller K pre-trained first, ``k_warmup_steps``
    each (default: a tenth of ``train.steps``, at most 40; 0: none), each passing its LoRA on
    to the next and the last to the run at K: at a small K the LM learns to read merged blocks
    within a few dozen steps, where at K = 4 when that happens varies with the seed.
    ``init_lora_from`` (a saved model or checkpoint at any K, e.g. a finished pre-training at
    a smaller K) gives the LoRA's start instead; there are no warm-ups then.
    """

    model: str = model_option()
    ktm: KTMConfig = ktm_part()
    train: TrainConfig = train_part()
    texts: list[str] = option(
        default_factory=list,
        flag="text",
        repeat=True,
        help="a .txt file (paragraphs) or .jsonl file (repeatable); and/or --task",
    )
    corpus: str | None = option(
        None,
        choices=CORPORA,
        help="general: ktm's broad offline corpus (Python docstrings, trees, tables, and the "
        "training splits of the reviews and code data under $KTM_DATA_DIR), for a merger "
        "every task on this base model starts from",
    )
    text_field: str = option("text", help="the JSONL field holding the text")
    continuation: float = option(
        0.0,
        help="share of the training chunks posed as continuation (the LM goes on with the "
        "next chunk after the compressed one) instead of reconstruction",
    )
    lookup: float = option(
        0.0,
        help="share of the training chunks posed as lookup: the chunk, 'Find:' and two of its "
        "tokens, all merged, and the three tokens after them as the answer (finding by content, "
        "which reconstruction never asks; experimental)",
    )
    chunk_tokens: int = option(64, help="tokens per chunk (the longest, with --chunk-min-tokens)")
    chunk_min_tokens: int | None = option(
        None,
        help="the shortest chunk: lengths are drawn evenly from here to --chunk-tokens, so the "
        "merger reads prompts of any length in that range (one fixed length is all a merger "
        "pre-trained on it reads); default a quarter of --chunk-tokens, at least 2",
    )
    max_chunks: int = option(20000, help="chunks read at most")
    holdout_chunks: int = option(
        64, help="chunks kept out of training to measure the reconstruction loss"
    )
    dtype: str = dtype_option()
    data: DataConfig | None = dataclasses.field(default=None, metadata={"given_by": "task"})
    k_warmup: list[int] | None = option(
        None,
        help="smaller K to pre-train first, each passing its LoRA on (default: 2, 4, ... "
        "below --k; none: no warm-up)",
    )
    k_warmup_steps: int | None = option(
        None, help="steps at each warm-up K (default: a tenth of --steps, at most 40; 0: none)"
    )
    init_lora_from: str | None = option(
        None,
        help="start the LoRA from this saved model or checkpoint at any K instead of the warm-ups",
    )
    init_from: str | None = option(
        None,
        help="start merger and LoRA from this saved model or checkpoint of the same shape "
        "(e.g. a general merger, to pre-train on with other text); no warm-ups then",
    )

    def __post_init__(self) -> None:
        if not self.texts and self.data is None and self.corpus is None:
            raise KTMError("give text files (--text), a task (--task) or --corpus general")
        c = self.continuation
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0 <= c <= 1:
            raise KTMError(f"continuation must be a share in [0, 1], got {c!r}")
        lk = self.lookup
        if isinstance(lk, bool) or not isinstance(lk, int | float) or not 0 <= lk <= 1 - c:
            raise KTMError(f"lookup must be a share in [0, 1 - continuation], got {lk!r}")
        if self.corpus is not None and self.corpus not in CORPORA:
            raise KTMError(f"corpus must be one of {', '.join(CORPORA)}, got {self.corpus!r}")
        m = self.ktm
        if m.k < 2 or m.merger != "mlp":
            raise KTMError(
                f"pre-training trains an MLP merger at K > 1, got k={m.k}, merger={m.merger!r}: "
                f"there is nothing to pre-train; use --k 2 or more with --merger mlp"
            )
        check_dtype(self.dtype)
        if self.k_warmup_steps is None:  # recorded as resolved: a tenth of the run, at most 40
            self.k_warmup_steps = min(K_WARMUP_STEPS, max(1, self.train.steps // 10))
        s = self.k_warmup_steps
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise KTMError(f"k_warmup_steps must be an integer >= 0, got {s!r}")
        if self.init_lora_from and self.init_from:
            raise KTMError("give init_from (merger and LoRA) or init_lora_from, not both")
        started = self.init_lora_from or self.init_from
        if self.k_warmup is None:  # recorded as resolved: 2, 4, 8, … below K
            self.k_warmup = k_ladder(self.ktm.k) if s and not started else []
        if self.chunk_min_tokens is None:  # recorded as resolved
            self.chunk_min_tokens = max(2, self.chunk_tokens // 4)
        if not 2 <= self.chunk_min_tokens <= self.chunk_tokens:
            raise KTMError(
                f"chunk_min_tokens must be in [2, chunk_tokens={self.chunk_tokens}], got "
                f"{self.chunk_min_tokens!r}"
            )
        w = list(self.k_warmup)
        if w and started:
            raise KTMError(
                f"init_lora_from starts the LoRA where the warm-ups would (k_warmup={w}); "
                f"give one of them (--k-warmup none with --init-lora-from)"
            )
        if w and not s:
            raise KTMError(f"k_warmup={w} needs k_warmup_steps > 0")
        ints = all(isinstance(k, int) and not isinstance(k, bool) for k in w)
        if not ints or w != sorted(set(w)) or (w and (w[0] < 2 or w[-1] >= self.ktm.k)):
            raise KTMError(
                f"k_warmup must be increasing integers from 2 up to below k={self.ktm.k}, got "
                f"{self.k_warmup!r}"
            )
        if self.max_chunks <= self.holdout_chunks:
            raise KTMError("max_chunks must exceed holdout_chunks")
        if self.train.lr is None:  # recorded as used
            self.train = dataclasses.replace(self.train, lr=DEFAULT_LR)

    def to_dict(self) -> dict:
        return run_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainConfig":
        if "chunk_tokens" in d and "chunk_min_tokens" not in d:  # written when all were one length
            d = {**d, "chunk_min_tokens": d["chunk_tokens"]}
        return run_from_dict(cls, d, **({"data": DataConfig} if d.get("data") else {}))


def _k_warmups(
    cfg: PretrainConfig, run: RunFolder, resume: bool, progress: bool, chunks: list[str]
) -> list[dict]:
    """Pre-train at each K of ``cfg.k_warmup`` in turn, each a part ``warmup-k<K>`` of
    ``run`` starting from the previous one's LoRA. Returns what each did; none when the run at
    K is being resumed past its start (its checkpoint holds the LoRA)."""
    if not cfg.k_warmup or (resume and list_checkpoints(run.path / "checkpoints")):
        return []
    done, previous = [], None
    for k in cfg.k_warmup:
        sub = dataclasses.replace(
            cfg,
            ktm=dataclasses.replace(cfg.ktm, k=k),
            # a constant rate: the run at K picks up a LoRA still learning, not cooled down
            train=dataclasses.replace(
                cfg.train, steps=cfg.k_warmup_steps, schedule="constant", eval_every=0
            ),
            k_warmup=[],
        )

        def warm_up(part: RunFolder, again: bool, sub=sub, previous=previous) -> None:
            if process_state().is_main_process:
                print(f"ktm: warm-up: reconstruction at K = {sub.ktm.k} for {sub.train.steps} "
                      f"steps ({part.path})", file=sys.stderr)  # fmt: skip
            run_pretraining(sub, part.path, again, progress, previous, chunks)

        metrics, _ = run.run_part(f"warmup-k{k}", warm_up)
        last = metrics["evals"][-1] if metrics.get("evals") else {}
        done.append({"k": k, "steps": metrics["steps"], "train_seconds": metrics["train_seconds"],
                     "wall_seconds": metrics.get("wall_seconds", 0.0), **last})  # fmt: skip
        previous = run.path / f"warmup-k{k}" / "model"
    return done


def run_pretraining(
    cfg: PretrainConfig,
    output_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    lora_from: Path | None = None,
    chunks: list[str] | None = None,
) -> dict:
    """Pre-train merger + LoRA on reconstruction of plain text; writes ``<out>/model``.

    The smaller K of ``cfg.k_warmup`` come first (see :class:`PretrainConfig`); ``lora_from``
    (a model folder of the same base and LoRA shape, any K) gives the LoRA's start;
    ``chunks`` is the text already cut (the warm-ups get their run's).
    """
    import torch

    run = RunFolder(output_dir, "pretrain")
    out = run.path
    run.check(cfg, resume)
    for name in ("init_lora_from", "init_from"):
        if getattr(cfg, name) and not Path(getattr(cfg, name)).exists():
            raise KTMError(f"{name}: no saved model or checkpoint at {getattr(cfg, name)}")
    # Only the tokenizer before the warm-ups: each loads its own model, one at a time.
    chunks = chunks or pretraining_chunks(cfg, load_tokenizer(cfg.model))
    holdout = min(cfg.holdout_chunks, max(1, len(chunks) // 10))  # at most a tenth held out
    state = run.start(cfg, resume)
    t_warm = run.seconds_since_start()
    warmups = _k_warmups(cfg, run, resume, progress, chunks)
    warm_ran = run.seconds_since_start() - t_warm
    if warmups:
        lora_from = out / f"warmup-k{warmups[-1]['k']}" / "model"
    elif cfg.init_lora_from:
        lora_from = Path(cfg.init_lora_from)
    torch.manual_seed(cfg.train.seed)  # the merger's initialisation, with or without warm-ups
    model = KTMModel.from_base(cfg.model, cfg.ktm, dtype=getattr(torch, cfg.dtype))
    if lora_from is not None:
        init_from(model, lora_from, lora_only=True)
    elif cfg.init_from:  # (a resumed run then loads its checkpoint over it)
        init_from(model, Path(cfg.init_from))
    if cfg.ktm.token_scorer == "idf":
        model.fit_token_idf(chunks)
    cfg.train.progress = progress
    held = reconstruction_examples(chunks[:holdout])
    examples = reconstruction_examples(chunks[holdout:], cfg.continuation)
    if cfg.lookup:
        examples = mix_lookup(examples, model.tokenizer, cfg.lookup, cfg.train.seed)
    passes = cfg.train.steps * cfg.train.batch_size / len(examples)  # batch_size: per step
    if passes > MANY_PASSES and state.is_main_process and not resume:
        # Read that often, a few hundred chunks of tree prompts did not carry to new trees;
        # ten thousand chunks read once did.
        print(
            f"ktm: note: pre-training reads each of its {len(examples)} chunks ~{passes:.0f} "
            f"times; a merger learnt from so little text may not carry to new prompts — add "
            f"unlabeled text of the same kind (--pretrain-text for `ktm train`, --text for "
            f"`ktm pretrain`)",
            file=sys.stderr,
        )
    setup_seconds = run.seconds_since_start() - warm_ran
    result = train(
        model,
        examples,
        cfg.train,
        out,
        resume=resume,
        evaluate=lambda m: reconstruction_nll(m, held),
    )
    warm_seconds = sum(w.get("wall_seconds", w["train_seconds"]) for w in warmups)
    return run.finish(
        {
            "model": cfg.model,
            "k": cfg.ktm.k,
            "chunks": len(examples),
            "chunk_tokens": cfg.chunk_tokens,
            "steps": result.steps_done,
            "train_seconds": round(sum(r["seconds"] for r in result.history), 1),
            # warm-ups, loading, and the steps, evaluations and checkpoints of every resume
            "wall_seconds": round(warm_seconds + setup_seconds + result.wall_seconds, 1),
            "evals": result.evals,
            "k_warmup": warmups,
        }
    )
