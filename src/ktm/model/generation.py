"""Generation and classification with :class:`ktm.model.KTMModel`: a KV cache over the
compressed prefix, batched, greedy or sampled, stopping at EOS."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import KTMError
from ..packing import CompressedBatch
from ..sampling import SamplingConfig, choose_next
from .lm_utils import eval_mode


class GenerationMixin:
    """Inference methods of a :class:`KTMModel` (mixed into it)."""

    @torch.no_grad()
    def next_token_logits(
        self, prompts: Sequence[str | Sequence[int]], suffixes: Sequence[str] | None = None
    ) -> torch.Tensor:
        """(B, V) logits of the token after each prompt."""
        with eval_mode(self):
            hidden, _ = self.hidden_states(self.compress(prompts, suffixes))
            return self.head(hidden[:, -1]).float()

    # ----------------------------------------------------------------- generation
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
        on_step: Callable[[list[int]], bool | None] | None = None,
    ) -> list[list[int]]:
        """Generate from a compressed batch with a KV cache; stops each row at EOS.

        Returns the new token ids per row, without the EOS. ``on_step`` (for streaming) gets
        each step's B new token ids as they are chosen (EOS again for finished rows); when it
        returns ``False`` generation stops there (a server whose clients went away).
        """
        cfg = sampling or SamplingConfig()
        self._check_length(batch, cfg.max_new_tokens)
        gen = None
        if cfg.seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        eos = self.tokenizer.eos_token_id
        b = batch.embeds.shape[0]
        with eval_mode(self):
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
                if on_step is not None and on_step(nxt.tolist()) is False:
                    break  # the caller needs no more tokens (its requests were cancelled)
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
        prompts: Sequence[str | Sequence[int]],
        suffixes: Sequence[str] | None = None,
        max_new_tokens: int = 32,
        budget: float | None = None,
        budget_positions: int | None = None,
        **sampling,
    ) -> list[str]:
        """Compress the prompts and generate a continuation for each (greedy by default).

        ``budget`` / ``budget_positions``: selective expansion (see ``compress``).
        ``sampling`` takes the fields of :class:`SamplingConfig` (do_sample, temperature,
        top_k, top_p, seed).
        """
        cfg = SamplingConfig(max_new_tokens=max_new_tokens, **sampling)
        batch = self.compress(prompts, suffixes, budget, budget_positions)
        ids = self.generate_ids(batch, cfg)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    @torch.no_grad()
    def classify(
        self,
        prompts: Sequence[str | Sequence[int]],
        choices: Sequence[str],
        suffixes: Sequence[str] | None = None,
    ) -> list[int]:
        """Index of the most likely choice for each prompt (log-likelihood of its tokens)."""
        choice_ids = self.encode_answers(choices)
        firsts = [c[0] for c in choice_ids]
        prompt_ids, suffix_ids = self.encode_prompts(prompts, suffixes)
        with eval_mode(self):
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
