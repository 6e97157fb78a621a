"""The options of each command that no library config holds (where a run goes, what to print),
as dataclasses too, so every option of ``ktm`` is generated the same way."""

from __future__ import annotations

from dataclasses import MISSING, dataclass

from ..config import DTYPES
from ..errors import KTMError
from ..fields import option
from ..model import DEFAULT_MODEL

OUT_HELP = "run folder (config, checkpoints, logs, metrics, model)"


def _base_model() -> object:
    return option(
        None,
        help="the base model to load the saved adapter on (default: the one the folder names, "
        "if ktm trusts it: the bundled model, a cached hub model, or a folder under the "
        "current one, $KTM_CACHE_DIR or $KTM_MODEL_ROOTS)",
    )


def _checkpoint() -> object:
    return option(
        MISSING, help="a saved model folder, or a run folder (its model/)", positional=True
    )


@dataclass(kw_only=True)
class RunPlace:
    """Where a run lives, and how it reports."""

    out: str = option(MISSING, help=OUT_HELP)
    resume: bool = option(
        False, help="continue the run in --out (alone: with the options it was started with)"
    )
    progress: bool = option(
        True, help="show a progress bar (--no-progress: a line every 30 s instead)"
    )


@dataclass(kw_only=True)
class BenchArms:
    arms: str = option(
        "k4,k1,k4-mean",
        help="comma-separated: k<K>, k<K>-fresh, k<K>-mean, k<K>-random, k<K>-pre, first<K>, "
        "last<K>, prune<K>, zeroshot, majority",
    )
    out: str = option(MISSING, help="folder for the arms, results.json/.md and the plots")
    progress: bool = option(True, help="show progress bars")
    jobs: int = option(
        1,
        help="train this many arms at a time, in worker processes sharing the torch threads "
        "(on a CPU, 2 one-thread jobs beat one 2-thread job); evaluation stays one at a time",
    )

    arm_steps: str | None = option(
        None,
        help="task steps for some arms, e.g. k1=80 (the uncompressed reference learns in "
        "fewer); the others train --steps; each arm's steps are in results.json",
    )

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise KTMError(f"--jobs must be an integer >= 1, got {self.jobs}")


@dataclass(kw_only=True)
class EvalOptions:
    checkpoint: str = _checkpoint()
    base_model: str | None = _base_model()
    split: str = option("test", choices=("train", "test"), help="the split to evaluate")
    limit: int | None = option(None, help="evaluate the first N examples only")
    eval_batch_size: int = option(32, help="examples per evaluation batch")
    out: str | None = option(None, help="also write the metrics JSON here")


@dataclass(kw_only=True)
class GenerateOptions:
    checkpoint: str = _checkpoint()
    base_model: str | None = _base_model()
    prompt: list[str] = option(MISSING, repeat=True, help="text to compress (repeatable)")
    suffix: list[str] | None = option(
        None, repeat=True, help="uncompressed text after each prompt (once per --prompt)"
    )
    budget: float | None = option(
        None,
        help="selective expansion: positions per prompt token, the highest-ranked tokens raw "
        "(default: the model's own budget, if it was trained with one)",
    )
    budget_positions: int | None = option(
        None, help="selective expansion: positions each prompt may read (instead of --budget)"
    )
    json: bool = option(
        False, help="print one JSON line per prompt, with token counts and the tokens kept raw"
    )


@dataclass(kw_only=True)
class ExportOptions:
    checkpoint: str = _checkpoint()
    base_model: str | None = _base_model()
    format: str = option("vllm", choices=("vllm",), help="the engine to export for")
    out: str = option(MISSING, help="new folder for the exported model")
    dtype: str = option("float32", choices=DTYPES, help="dtype of the exported weights")


@dataclass(kw_only=True)
class ServeOptions:
    checkpoint: str = _checkpoint()
    base_model: str | None = _base_model()
    host: str = option("127.0.0.1", help="bind address (default: loopback only)")
    port: int = option(8000, help="TCP port")
    dtype: str = option("float32", choices=DTYPES, help="dtype of the base weights")


@dataclass(kw_only=True)
class TreeDataOptions:
    stage: str = option("small", help="curriculum stage (small ... x3large)")
    train_trees: int = option(2000, help="trees in the training split")
    test_trees: int = option(100, help="trees in the test split")
    seed: int = option(0, help="seed of the training trees (test: seed + 1)")
    balance: bool = option(True, help="class-balance the training split")
    balance_test: bool = option(False, help="class-balance the test split too")
    split_question: bool = option(False, help="keep the question as an uncompressed suffix")
    out: str = option(MISSING, help="output folder (train.jsonl, test.jsonl, meta.json)")


@dataclass(kw_only=True)
class HubDataOptions:
    category: str | None = option(
        None, help="the dataset config (Amazon category / CommitPackFT language)"
    )
    out: str = option(MISSING, help="output folder (train.jsonl, test.jsonl, meta.json)")


@dataclass(kw_only=True)
class SpeedOptions:
    model: str = option(DEFAULT_MODEL, help="base causal LM")
    k: list[int] = option(default_factory=lambda: [1, 4], help="K values, comma-separated")
    dtype: str = option("float32", choices=DTYPES, help="dtype of the base weights")
    merger_hidden_factor: float | None = option(
        0.5, help="MLP width c in h = int(c*K)*d, as `ktm train` (none: the paper's)"
    )
    out: str = option(MISSING, help="JSON file for the raw results")


@dataclass(kw_only=True)
class PrefillBenchOptions(SpeedOptions):
    lengths: list[int] = option(
        default_factory=lambda: [512, 2048], help="prompt lengths in tokens"
    )
    batch_sizes: list[int] = option(default_factory=lambda: [1], help="batch sizes")
    merger_context: int = option(0, help="tokens before each block the merger also reads")
    merger_layers: int = option(
        0, help="base-model layers run over the raw prompt before merging (see ktm train)"
    )
    budget: float | None = option(
        None,
        help="selective expansion at K > 1: positions per prompt token, its highest-ranked "
        "tokens raw (the ranking's cost counts in the time to first token)",
    )
    repeats: int = option(5, help="measurements per cell (median reported)")
    decode_steps: int = option(16, help="decode steps timed per arm")


@dataclass(kw_only=True)
class TrainSpeedOptions(SpeedOptions):
    steps: int = option(10, help="measured steps per K")
    batch_size: int = option(16, help="examples per step")
    stage: str = option("small", help="tree stage of the examples")
    lora_r: int = option(8, help="LoRA rank")
    lora_alpha: float = option(32, help="LoRA alpha")
    lora_dropout: float = option(0.0, help="LoRA dropout")


@dataclass(kw_only=True)
class ServeBenchOptions:
    checkpoint: str | None = option(
        None, positional=True, help="a saved model (default: a fresh --k model on --model)"
    )
    model: str = option(DEFAULT_MODEL, help="base causal LM (without a checkpoint)")
    base_model: str | None = _base_model()
    k: int = option(4, help="K of the fresh model (without a checkpoint)")
    requests: int = option(64, help="requests sent")
    clients: int = option(32, help="concurrent clients")
    max_tokens: int = option(16, help="tokens generated per request")
    max_batch: int = option(8, help="requests decoded together at most")
    soak_seconds: float = option(0.0, help="then a steady load this long (memory)")
    out: str = option(MISSING, help="JSON file for the raw results")
