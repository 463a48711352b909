"""Quality bars of the embedded default models (issue: embedded default models), one run.

Generates a seeded set of prompts covering all ten digits with `synthset/tiny-digits` at its
default steps and guidance through synthset's `ImageGenerator`, reads them with the judge and
scores them with the tiny CLIP, and prints every bar with the measured value.

    python bench/default_quality.py [--images 300] [--speed-images 256]
"""

from __future__ import annotations

import argparse
import json

from synthset.models.quality import measure, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--speed-images", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="also print the metrics as JSON")
    args = parser.parse_args()
    metrics = measure(n=args.images, seed=args.seed, speed_images=args.speed_images)
    print(report(metrics))
    if args.json:
        print(json.dumps(metrics, indent=2, default=str))


if __name__ == "__main__":
    main()
