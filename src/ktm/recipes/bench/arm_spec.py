"""What an arm of ``ktm bench`` is, from its name, and the run config it trains.

Arms:
    ``k<K>``         K-token merging, ktm's recipe: the MLP merger + LoRA pre-trained on the
                     task's prompts (``--pretrain-steps``), then trained on the task;
                     ``k1`` is the uncompressed LoRA reference;
    ``k<K>-fresh``   MLP merger trained on the task alone, from the mean-pooling init;
    ``k<K>-mean``    block-mean merger + LoRA;
    ``k<K>-random``  the paper's recipe: MLP merger with its random init, task alone;
    ``k<K>-pre``     MLP merger + LoRA started from ``--init-from`` (e.g. ``ktm pretrain``);
                     the other arms do not use it;
    ``k<K>@<B>``     any of the above with selective expansion: at most B positions per prompt
                     token, the highest-ranked tokens raw (e.g. ``k8@0.25`` reads no more than
                     ``k4``); the positions it read are counted exactly;
    ``first<K>``, ``last<K>``, ``prune<K>``
                     keep ⌈T/K⌉ prompt tokens (the start, the end, or the most informative by
                     the base model's self-information) + LoRA at K = 1
                     (:mod:`ktm.tasks.token_budget`); ``qprune<K>`` ranks by the raw question
                     after the prompt first (the baseline of ``--token-scorer query``);
    ``zeroshot``     the base model, untrained, uncompressed;
    ``majority``     always the commonest training answer (label or text);
    ``copy``         the input unchanged (edit tasks: the file before the edit).
"""

from __future__ import annotations

import dataclasses
import re

from ...errors import KTMError
from ..general_merger import NONE
from ..run_config import RunConfig

_ARM = re.compile(
    r"^(?:k(\d+)(?:-(mean|random|pre|fresh))?(?:@(\d*\.?\d+))?|(first|last|prune|qprune)(\d+)"
    r"|(zeroshot|majority|copy))$"
)


@dataclasses.dataclass(frozen=True)
class Arm:
    """What an arm name means: its K-token merging setup or its baseline."""

    name: str
    k: int = 1  # merging factor of the model that runs
    budget_k: int = 1  # the K whose input budget the arm matches
    merger: str = "mlp"
    merger_init: str | None = None
    reduction: str | None = None
    trained: bool = True  # zeroshot, majority and copy train nothing
    pretrained: bool = False  # starts from the bench's --init-from
    fresh: bool = False  # no pre-training phase (the task alone)
    budget: float | None = None  # selective expansion: positions per prompt token

    @property
    def kind(self) -> str:
        if self.name in ("zeroshot", "majority", "copy"):
            return self.name
        if self.pretrained:
            return "merge-pretrained"
        return self.reduction or ("mean" if self.merger == "mean" else "merge")


def parse_arm(name: str) -> Arm:
    m = _ARM.match(name)
    if not m:
        raise KTMError(
            f"bad arm {name!r}: use k<K>, k<K>-fresh, k<K>-mean, k<K>-random, k<K>-pre (each "
            "with an optional @<budget>, e.g. k8@0.25), first<K>, last<K>, prune<K>, qprune<K>, "
            "zeroshot, majority or copy (e.g. k4,k1,k4-mean,first4,prune4)"
        )
    k, variant, budget, reduction, rk, fixed = m.groups()
    if fixed:
        return Arm(name, trained=False)
    if reduction:
        return Arm(name, k=1, budget_k=int(rk), reduction=reduction)
    if int(k) < 1:
        raise KTMError(f"bad arm {name!r}: K must be >= 1")
    if budget is not None and not (int(k) > 1 and 0 < float(budget) <= 1):
        raise KTMError(f"bad arm {name!r}: a budget needs K > 1 and a share in (0, 1]")
    return Arm(
        name,
        k=int(k),
        budget_k=int(k),
        merger="mean" if variant == "mean" else "mlp",
        merger_init="random" if variant == "random" else None,
        pretrained=variant == "pre",
        fresh=variant in ("fresh", "random"),
        budget=float(budget) if budget is not None else None,
    )


def arm_config(base: RunConfig, name: str) -> RunConfig:
    """``base`` with the K, merger or reduction that arm ``name`` names; only ``-pre`` arms
    keep ``base.init_from``."""
    arm = parse_arm(name)
    if arm.pretrained and not base.init_from:
        raise KTMError(f"arm {name!r} starts from a pre-trained merger: give --init-from")
    ktm = dataclasses.replace(
        base.ktm,
        k=arm.k,
        merger=arm.merger,
        merger_init=arm.merger_init or base.ktm.merger_init,
        budget=arm.budget if arm.k > 1 else None,
    )
    # ktm's recipe (k<K>) starts where `ktm train` would: the general merger if there is one
    init_from = base.init_from if arm.pretrained else (None if not arm.fresh else NONE)
    cfg = dataclasses.replace(
        base,
        ktm=ktm,
        init_from=init_from,
        pretrain_steps=None,
        reduction=arm.reduction,
        reduction_k=arm.budget_k if arm.reduction else 1,
    )
    steps = 0 if arm.fresh else (base.pretrain_steps if cfg.pretraining_applies else None)
    return dataclasses.replace(cfg, pretrain_steps=steps)


def parse_arm_steps(spec: str | None, arms: list[str]) -> dict[str, int]:
    """``"k1=80,first4=300"`` → ``{"k1": 80, "first4": 300}``: task steps for the named arms
    (the others train ``--steps``). Every name must be one of ``arms``."""
    if not spec:
        return {}
    steps: dict[str, int] = {}
    for item in spec.split(","):
        name, eq, n = item.strip().partition("=")
        if not eq or not n.strip().isdigit() or int(n) < 1:
            raise KTMError(f"bad --arm-steps item {item.strip()!r}: use ARM=STEPS, e.g. k1=80")
        if name.strip() not in arms:
            raise KTMError(
                f"--arm-steps names {name.strip()!r}, which is not one of the arms "
                f"({','.join(arms)})"
            )
        steps[name.strip()] = int(n)
    return steps


def with_steps(cfg: RunConfig, steps: int) -> RunConfig:
    """``cfg`` training ``steps`` task steps (its evaluation interval kept within them)."""
    every = cfg.train.eval_every if cfg.train.eval_every <= steps else 0
    return dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, steps=steps, eval_every=every)
    )
