"""Write scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download) as a class-folder set.

Usage: python scripts/digits_folder.py data/digits
Gives data/digits/<digit>/<index>.png: 8 x 8 grayscale PNGs whose 17 ink levels are scaled to 0-255.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def write_digits(root: Path) -> int:
    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.round(image * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{index:04d}.png")
    return len(digits.images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to create")
    args = parser.parse_args()
    print(f"wrote {write_digits(args.root)} images under {args.root}")


if __name__ == "__main__":
    main()
