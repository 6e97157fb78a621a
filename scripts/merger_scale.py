"""How large a trained merger's MLP output is next to the block mean it is added to.

For each saved model, the first 16 tokens of a fixed review are cut into blocks of K and
merged; prints and writes (JSON) the mean norm of a token embedding, of the block mean, and
of the MLP's contribution (merged − mean). A contribution far above a token's norm means the
LM reads inputs far off the scale it was trained on.

    python scripts/merger_scale.py MODEL_DIR [MODEL_DIR ...] --out scale.json
"""

import argparse
import json

import torch

from ktm.merger import masked_block_mean
from ktm.model import KTMModel

TEXT = (
    "Review: This dress fits perfectly and the colour is lovely, I would buy it again and "
    "again for my whole family, Label:"
)

ap = argparse.ArgumentParser()
ap.add_argument("models", nargs="+")
ap.add_argument("--out", required=True)
args = ap.parse_args()
rows = []
for path in args.models:
    m = KTMModel.from_pretrained(path)
    ids = m.tokenize([TEXT], special=True)[0][:16]
    with torch.no_grad():
        e = m.embed(torch.tensor(ids)).float().view(16 // m.k, m.k, -1)
        mask = torch.ones(e.shape[:2], dtype=torch.bool)
        mean = masked_block_mean(e, mask)
        extra = m.merger(e, mask).float() - mean
    row = {
        "model": path,
        "k": m.k,
        "merger": m.config.merger,
        "token_norm": round(e.norm(dim=-1).mean().item(), 3),
        "mean_norm": round(mean.norm(dim=-1).mean().item(), 3),
        "mlp_part_norm": round(extra.norm(dim=-1).mean().item(), 3),
    }
    print(json.dumps(row))
    rows.append(row)
with open(args.out, "w") as f:
    json.dump(rows, f, indent=2)
