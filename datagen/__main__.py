"""``python -m datagen [--out data] [--seed N]``: regenerate every bundled data file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from datagen import DEFAULT_SEED, write_all


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m datagen", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data"), help="output folder")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="base random seed")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sizes = write_all(args.out, args.seed)
    for rel, size in sizes.items():
        print(f"{size:>12,}  {args.out / rel}")
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
