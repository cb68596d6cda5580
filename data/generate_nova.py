"""Write the Nova Universe sample SQLite database.

    python data/generate_nova.py --out data/nova.sqlite --scale 1

scale 1 is the demo (≈ 43 k rows); scale 50 is the benchmark shape (≈ 2.16 M rows).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nova_pipeline.demo.sample import generate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("nova.sqlite"),
                        help="SQLite file to write (replaced)")
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (1 = demo, 50 = 2.16 M-row benchmark)")
    parser.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same content")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error(f"--scale must be > 0, got {args.scale}")
    started = time.perf_counter()
    counts = generate(args.out, scale=args.scale, seed=args.seed)
    seconds = time.perf_counter() - started
    total = sum(counts.values())
    print(f"{args.out}: {total:,} rows in {len(counts)} tables, {seconds:.1f} s ({total / seconds:,.0f} rows/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
