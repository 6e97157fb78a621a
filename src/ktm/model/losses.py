"""The training objectives of :class:`ktm.model.KTMModel`: answer cross entropy (vocabulary
logits only where an answer token is predicted), prompt reconstruction, and distillation from a
teacher model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from typing_extensions import Self

from .lm_utils import eval_mode

RECONSTRUCT_MARKER = "\nRepeat the text above:\n"


class LossesMixin:
    """Losses of a :class:`KTMModel` (mixed into it)."""

    def answer_states(
        self,
        prompt_ids: Sequence[Sequence[int]],
        answer_ids: Sequence[Sequence[int]],
        suffix_ids: Sequence[Sequence[int]] | None = None,
        all_layers: bool = False,
        align_k: int | None = None,
        budget: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states at the M positions that predict answer tokens, and those tokens.

        Returns (states, targets): states (L, A + M, d) — every layer's output if
        ``all_layers``, else only the final (normed) one, L = 1 — and targets (M,) long.
        With ``align_k``, the A states first are those at the end of each K-block of the
        prompt (the compressed position of a K = ``align_k`` model, or the block's last
        token in a less compressed one), so that models of different K line up. ``budget``
        overrides the model's selective-expansion budget (see ``compress_ids``).
        """
        batch = self.compress_ids(prompt_ids, suffix_ids, answer_ids, budget)
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
        teacher: Self | None = None,
        distill_blocks: bool = False,
        budget: float | None = None,
    ) -> torch.Tensor:
        """Training losses as a (3,) tensor of sums over answer tokens:
        [answer cross entropy, reconstruction cross entropy, distillation].

        ``reconstruct`` adds a pass that regenerates each compressed prompt from its merged
        prefix. ``teacher`` (e.g. a K = 1 model) adds distillation: every layer's hidden state
        (squared error relative to the teacher's mean square) at the answer positions — and,
        with ``distill_blocks``, at every compressed position against the teacher's state at
        the last token of the same block — plus the KL divergence of the answer
        distributions. Unused entries are 0. ``budget`` keeps that share of each prompt's
        highest-ranked tokens raw for the task loss (the raw-to-merged curriculum).
        """
        align = self.k if (teacher is not None and distill_blocks) else None
        states, targets = self.answer_states(
            prompt_ids, answer_ids, suffix_ids, teacher is not None, align, budget
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
            with torch.no_grad(), eval_mode(teacher):
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
