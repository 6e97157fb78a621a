"""Lookup pre-training data from the general corpus: a chunk of text, then 'Find: <2 tokens of it>',
answer: the 3 tokens that follow them in the chunk. Everything before the answer is merged."""
import json, random, sys
from ktm.model.base_models import load_tokenizer

tok = load_tokenizer("smollm2-135m")
rows = [json.loads(l)["text"] for l in open("runs/corpus/general.jsonl")]
rng = random.Random(0)
out = {"train": [], "test": []}
for split, n in (("train", 20000), ("test", 200)):
    while len(out[split]) < n:
        ids = tok(rng.choice(rows), add_special_tokens=False)["input_ids"]
        length = rng.randint(16, 56)
        if len(ids) < length:
            continue
        s = rng.randint(0, len(ids) - length)
        chunk = ids[s : s + length]
        j = rng.randint(0, length - 5)
        q, a = chunk[j : j + 2], chunk[j + 2 : j + 5]
        doc, query, answer = tok.decode(chunk), tok.decode(q), tok.decode(a)
        if not query.strip() or not answer.strip() or doc.count(query) != 1:
            continue  # the query must point at one place
        out[split].append({"doc": doc, "question": "\nFind: " + query, "answer": answer})
for split, xs in out.items():
    with open(f"runs/s19/lookup/{split}.jsonl", "w") as f:
        for x in xs:
            f.write(json.dumps(x) + "\n")
print({k: len(v) for k, v in out.items()})
