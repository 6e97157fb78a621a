"""Print the Markdown table of a `ktm bench speed` JSON file (as pasted in docs/results.md).

python scripts/speed_table.py docs/results/speed/speed-b1.json
"""

import argparse
import json

COLUMNS = [
    ("tokens", "prompt tokens", "{:,}"),
    ("batch", "batch", "{}"),
    ("k", "K", "{}"),
    ("ttft_s", "TTFT s", "{:.3f}"),
    ("speedup_vs_k1", "speed-up", "{:.2f}×"),
    ("flops_ratio_vs_k1", "FLOPs ratio", "{:.2f}×"),
    ("merger_share", "merger share", "{:.1%}"),
    ("merger_flops_share", "merger FLOPs share", "{:.1%}"),
    ("decode_tokens_per_s", "decode tok/s", "{:.1f}"),
    ("decode_vs_k1", "decode vs K = 1", "{:.2f}×"),
    ("kv_cache_mib", "KV cache MiB", "{:.1f}"),
    ("prefill_peak_mib", "prefill peak MiB", "{:.0f}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    args = parser.parse_args()
    rows = json.load(open(args.json_file))["rows"]
    print("| " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        cells = ["—" if row.get(key) is None else fmt.format(row[key]) for key, _, fmt in COLUMNS]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
