"""Writes the WebP sample that visiontok's image tests decode (Go has no WebP encoder): a 24 x 16
lossless WebP of the pattern the Go tests also draw.
  /usr/bin/python3 tools/reference/make_image_samples.py visiontok/testdata/formats"""

import sys

import numpy as np
from PIL import Image


def pattern(w=24, h=16):
    """Left half red, right half blue, a green bottom-right quarter: every orientation differs."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    a[:, w // 2:] = (0, 0, 255)
    a[h // 2:, w // 2:] = (0, 255, 0)
    return a


out = sys.argv[1]
Image.fromarray(pattern()).save(f"{out}/pattern.webp", lossless=True)
print("wrote", f"{out}/pattern.webp")
