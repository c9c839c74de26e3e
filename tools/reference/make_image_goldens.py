"""Makes the images of every kind that visiontok's decoding tests read, and what the official
TokLIP pipeline makes of them: PIL opens the file, torchvision's Resize(S, BICUBIC) and
CenterCrop(S) run on the image in the mode PIL opened it in, then open_clip's _convert_to_rgb
(TokLIP's src/open_clip/transform.py: the conversion comes after the resize), ToTensor and
Normalize(0.5, 0.5). The model input is therefore fixed by the 8-bit RGB crop, which is written
as a PNG (lossless); the VQ ids of the small test TokLIP (visiontok/testdata/toklip-tiny.pt,
float64) are written too.

Writes, under OUT (visiontok/testdata/inputs):
  <name>.<ext>             the input: photo-like JPEGs at several qualities and subsamplings,
                           progressive, grayscale, CMYK and EXIF-rotated JPEGs; PNGs of every
                           colour type and bit depth (1/2/4/8/16-bit gray, gray+alpha, RGB, RGBA,
                           16-bit, palette with and without tRNS, tRNS colour keys, interlaced,
                           an eXIf orientation); GIFs (palette, transparency, a grey-ramp palette
                           that PIL opens as "L", an animation, a first frame smaller than the
                           screen); WebP (lossy, lossy + alpha, lossless, lossless + alpha, EXIF);
                           BMP (1, 8, 24, 32 bits, a grey palette)
  <name>.pre.png           the S x S RGB crop, EXIF orientation ignored (the official path)
  <name>.rotated.pre.png   the crop after ImageOps.exif_transpose, for files with an orientation
  inputs.json              per file: PIL's mode, size, the crop files, the VQ ids of both crops
                           and their smallest top-2 code margin

Needs Debian's python3-pil 9.4, python3-torch and python3-torchvision (the versions are
recorded in inputs.json):
  /usr/bin/python3 tools/reference/make_image_goldens.py --out visiontok/testdata/inputs
"""

import argparse
import io
import json
import os
import struct
import zlib

import numpy as np
import PIL
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image, ImageOps

from toklip_ref import TokLIP

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TESTDATA = os.path.join(ROOT, "visiontok", "testdata")


# --- pictures ----------------------------------------------------------------------------------


def photo(w, h, seed):
    """A photo-like RGB picture: smooth colour fields at several scales, soft and hard edges,
    a bright highlight and sensor grain, so that JPEG's chroma subsampling and IDCT matter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for scale, amp in ((0.01, 70), (0.03, 35), (0.09, 15)):
        for c in range(3):
            fx, fy, ph = rng.uniform(-1, 1, 3) * [scale * 6, scale * 6, np.pi]
            img[..., c] += amp * np.sin(fx * x + fy * y + ph * 3)
    img += 120 + rng.uniform(-20, 20, 3)
    # a disc with a soft edge and a rectangle with a hard one, in saturated colours
    cx, cy, r = w * 0.35, h * 0.55, min(w, h) * 0.22
    d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    a = np.clip(r - d, 0, 1.5)[..., None] / 1.5
    img = img * (1 - a) + a * np.array([220, 40, 30])
    box = (x > w * 0.6) & (x < w * 0.85) & (y > h * 0.15) & (y < h * 0.45)
    img[box] = [20, 90, 210]
    hl = np.exp(-((x - w * 0.7) ** 2 + (y - h * 0.75) ** 2) / (2 * (min(w, h) * 0.05) ** 2))
    img += 160 * hl[..., None]
    img += rng.normal(0, 4, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def alpha_ramp(w, h, seed):
    """An alpha plane with opaque, transparent and every partial value."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = (x * 255 // max(w - 1, 1)).astype(np.int64)
    a[: h // 4] = 0  # a transparent band whose colour PIL keeps but TokLIP's path blackens
    a[h // 4: h // 2] = 255
    a += rng.integers(-3, 4, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)


# --- a raw PNG writer, for what PIL cannot write (2/4-bit gray, 16-bit, tRNS keys, Adam7) -------


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_rows(rows, depth):
    """rows: [h][samples] of ints; packs each row at the bit depth, with filter byte 0."""
    out = bytearray()
    for row in rows:
        out.append(0)
        if depth == 8:
            out += bytes(int(v) for v in row)
        elif depth == 16:
            for v in row:
                out += struct.pack(">H", int(v))
        else:
            per = 8 // depth
            for i in range(0, len(row), per):
                b = 0
                for j in range(per):
                    v = int(row[i + j]) if i + j < len(row) else 0
                    b |= v << (8 - depth * (j + 1))
                out.append(b)
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, samples, depth, color_type, extra=b"", interlace=False):
    """samples: [h, w, channels] ints at the bit depth."""
    h, w = samples.shape[:2]
    flat = samples.reshape(h, w, -1)
    if interlace:
        data = b""
        for x0, y0, dx, dy in ADAM7:
            sub = flat[y0::dy, x0::dx]
            if sub.size:
                data += pack_rows(sub.reshape(sub.shape[0], -1), depth)
    else:
        data = pack_rows(flat.reshape(h, -1), depth)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra +
                png_chunk(b"IDAT", zlib.compress(data, 9)) + png_chunk(b"IEND", b""))


# --- a raw GIF writer, for a first frame smaller than the screen --------------------------------


def gif_lzw(indices, min_code):
    """LZW for GIF without a dictionary: a clear code before the table would grow past the
    first code width, so every code is min_code + 1 bits (valid, if not small)."""
    clear, end = 1 << min_code, (1 << min_code) + 1
    width = min_code + 1
    codes, run = [clear], 0
    for v in indices:
        if run == (1 << width) - (1 << min_code) - 2:
            codes.append(clear)
            run = 0
        codes.append(int(v))
        run += 1
    codes.append(end)
    bits, n, out = 0, 0, bytearray()
    for c in codes:
        bits |= c << n
        n += width
        while n >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            n -= 8
    if n:
        out.append(bits & 0xFF)
    blocks = bytearray([min_code])
    for i in range(0, len(out), 255):
        blocks += bytes([len(out[i:i + 255])]) + out[i:i + 255]
    return bytes(blocks) + b"\x00"


def write_gif(path, screen, frame_box, indices, palette, transparent=None):
    sw, sh = screen
    x0, y0, fw, fh = frame_box
    bits = 8
    out = b"GIF89a" + struct.pack("<HHBBB", sw, sh, 0x80 | (bits - 1), 0, 0)
    out += bytes(np.asarray(palette, np.uint8).reshape(-1)[: 3 << bits].tobytes().ljust(3 << bits, b"\0"))
    if transparent is not None:
        out += b"\x21\xF9\x04" + bytes([1]) + struct.pack("<H", 0) + bytes([transparent]) + b"\x00"
    out += b"\x2C" + struct.pack("<HHHHB", x0, y0, fw, fh, 0)
    out += gif_lzw(indices.reshape(-1), 8) + b"\x3B"
    with open(path, "wb") as f:
        f.write(out)


# --- the inputs --------------------------------------------------------------------------------


def exif_bytes(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def make_inputs(out):
    os.makedirs(out, exist_ok=True)
    files = []

    def save(name, img, **kw):
        p = os.path.join(out, name)
        img.save(p, **kw)
        files.append(name)

    p1 = Image.fromarray(photo(203, 157, 1))   # odd sizes, landscape, downscaled
    p2 = Image.fromarray(photo(640, 427, 2))   # a larger photo: a strong downscale
    p3 = Image.fromarray(photo(150, 211, 3))   # portrait
    p4 = Image.fromarray(photo(97, 61, 4))     # smaller than the input: upscaled
    p5 = Image.fromarray(photo(128, 170, 5))   # shorter side already the input size

    # JPEG: PIL's subsampling 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
    save("photo-q90-420.jpg", p1, quality=90, subsampling=2)
    save("photo-q75-420-large.jpg", p2, quality=75, subsampling=2)
    save("photo-q95-444.jpg", p3, quality=95, subsampling=0)
    save("photo-q85-422.jpg", p1, quality=85, subsampling=1)
    save("photo-q50-420-small.jpg", p4, quality=50, subsampling=2)
    save("photo-q90-exact.jpg", p5, quality=90, subsampling=2)
    save("photo-progressive.jpg", p3, quality=85, subsampling=2, progressive=True, optimize=True)
    save("gray.jpg", p1.convert("L"), quality=90)
    save("cmyk.jpg", p3.convert("CMYK"), quality=90)
    for o, img in ((3, p1), (6, p3), (8, p1), (5, p4)):
        save(f"exif-{o}.jpg", img, quality=90, exif=exif_bytes(o))

    # PNG through PIL
    rgba = np.dstack([photo(203, 157, 6), alpha_ramp(203, 157, 6)])
    save("rgb.png", p3)
    save("rgba.png", Image.fromarray(rgba, "RGBA"))
    save("rgba-exact.png", Image.fromarray(np.dstack([photo(128, 170, 7), alpha_ramp(128, 170, 7)]), "RGBA"))
    save("rgba-small.png", Image.fromarray(np.dstack([photo(97, 61, 8), alpha_ramp(97, 61, 8)]), "RGBA"))
    save("la.png", Image.fromarray(np.dstack([np.asarray(p1.convert("L")), alpha_ramp(203, 157, 9)]), "LA"))
    save("l.png", p3.convert("L"))
    save("bilevel.png", p1.convert("L").point(lambda v: 255 if v > 128 else 0).convert("1"))
    save("palette.png", p1.quantize(256, method=Image.Quantize.MEDIANCUT))
    pal16 = p3.quantize(16, method=Image.Quantize.MEDIANCUT)
    save("palette4-trns.png", pal16, bits=4, transparency=bytes([0, 128] + [255] * 14))
    save("png-exif-6.png", p3, exif=exif_bytes(6))

    # PNG written raw
    g = np.asarray(p1.convert("L")).astype(np.int64)
    write_png(os.path.join(out, "gray2.png"), (g >> 6)[..., None], 2, 0)
    write_png(os.path.join(out, "gray4.png"), (g >> 4)[..., None], 4, 0)
    write_png(os.path.join(out, "gray16.png"), (g * 257 - np.arange(g.shape[1]) * 40).clip(0, 65535)[..., None], 16, 0)
    write_png(os.path.join(out, "gray16-dark.png"), (g // 2)[..., None], 16, 0)  # values PIL keeps below 255
    rgb16 = np.asarray(p4).astype(np.int64) * 257 + np.random.default_rng(10).integers(0, 257, (61, 97, 3))
    write_png(os.path.join(out, "rgb16.png"), rgb16.clip(0, 65535), 16, 2)
    a16 = alpha_ramp(97, 61, 11).astype(np.int64) * 257 + 128
    write_png(os.path.join(out, "rgba16.png"), np.dstack([(np.asarray(p4).astype(np.int64) * 257 + 200).clip(0, 65535), a16.clip(0, 65535)]), 16, 6)
    write_png(os.path.join(out, "la16.png"), np.dstack([(np.asarray(p4.convert("L")).astype(np.int64) * 257 + 100).clip(0, 65535), a16.clip(0, 65535)]), 16, 4)
    write_png(os.path.join(out, "rgb-trns.png"), np.asarray(p1), 8, 2, extra=png_chunk(b"tRNS", struct.pack(">HHH", *np.asarray(p1)[0, 0])))
    write_png(os.path.join(out, "gray-trns.png"), g[..., None], 8, 0, extra=png_chunk(b"tRNS", struct.pack(">H", int(g[0, 0]))))
    write_png(os.path.join(out, "rgb-interlaced.png"), np.asarray(p4), 8, 2, interlace=True)
    files += ["gray2.png", "gray4.png", "gray16.png", "gray16-dark.png", "rgb16.png", "rgba16.png", "la16.png",
              "rgb-trns.png", "gray-trns.png", "rgb-interlaced.png"]

    # GIF
    save("palette.gif", p1.quantize(200, method=Image.Quantize.MEDIANCUT))
    q = p3.quantize(64, method=Image.Quantize.MEDIANCUT)
    save("transparent.gif", q, transparency=int(np.asarray(q)[0, 0]))
    f2 = p1.transpose(Image.Transpose.FLIP_LEFT_RIGHT).quantize(128)
    save("animated.gif", p1.quantize(128), save_all=True, append_images=[f2], duration=100, loop=0)
    idx = np.asarray(p4.quantize(64, method=Image.Quantize.MEDIANCUT))
    pal = np.asarray(p4.quantize(64, method=Image.Quantize.MEDIANCUT).getpalette()[: 64 * 3]).reshape(-1, 3)
    pal = np.vstack([pal, np.tile([[250, 10, 200]], (256 - 64, 1))])  # index 255: a colour a decoder must keep
    write_gif(os.path.join(out, "offset.gif"), (140, 90), (20, 15, 97, 61), idx, pal, transparent=255)
    ramp = np.repeat(np.arange(256)[:, None], 3, 1)  # a grey-ramp palette: PIL opens it as "L", resized bicubic
    write_gif(os.path.join(out, "gray.gif"), (203, 157), (0, 0, 203, 157), np.asarray(p1.convert("L")), ramp)
    files += ["offset.gif", "gray.gif"]

    # WebP
    save("lossy.webp", p1, quality=80)
    save("lossy-alpha.webp", Image.fromarray(rgba, "RGBA"), quality=80)
    save("lossless.webp", p3, lossless=True)
    save("lossless-alpha.webp", Image.fromarray(rgba, "RGBA"), lossless=True)
    save("webp-exif-8.webp", p3, quality=80, exif=exif_bytes(8))

    # BMP
    save("rgb.bmp", p1)
    save("palette.bmp", p3.quantize(100, method=Image.Quantize.MEDIANCUT))
    save("gray.bmp", p1.convert("L"))
    save("bilevel.bmp", p1.convert("L").point(lambda v: 255 if v > 128 else 0).convert("1"))
    save("rgba.bmp", Image.fromarray(rgba, "RGBA"))
    return files


# --- the official transform, the reference model -----------------------------------------------


def official(img, size):
    """TokLIP's eval transform up to the 8-bit crop: Resize, CenterCrop, _convert_to_rgb."""
    t = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size)])
    return np.asarray(t(img).convert("RGB"))


def load_model():
    golden = json.load(open(os.path.join(TESTDATA, "golden.json")))
    cfg = dict(golden["config"])
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    model = TokLIP(cfg)
    ckpt = torch.load(os.path.join(TESTDATA, "toklip-tiny.pt"), map_location="cpu")
    model.load_state_dict({k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()})
    return model.double().eval(), cfg["image_size"]


def vq_ids(model, pixels):
    x = torch.from_numpy(pixels.astype(np.float32) / 255.0)
    x = ((x - 0.5) / 0.5).permute(2, 0, 1)[None].double()
    ids, d = model.visual.trunk.vq.encode(x)
    top2 = torch.topk(-d, 2, dim=1).values
    return ids[0].tolist(), float((top2[:, 0] - top2[:, 1]).min())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    out = ap.parse_args().out
    files = make_inputs(out)
    model, size = load_model()
    golden = {"pil": PIL.__version__, "torchvision": torchvision.__version__, "size": size, "inputs": {}}
    with torch.no_grad():
        for name in files:
            img = Image.open(os.path.join(out, name))
            entry = {"mode": img.mode, "size": list(img.size)}
            crops = {"pre": official(img, size)}
            if img.getexif().get(0x0112, 1) != 1:
                crops["rotated"] = official(ImageOps.exif_transpose(Image.open(os.path.join(out, name))), size)
            for kind, pixels in crops.items():
                crop_name = f"{name}.{kind}.png" if kind == "pre" else f"{name}.rotated.pre.png"
                Image.fromarray(pixels, "RGB").save(os.path.join(out, crop_name))
                ids, margin = vq_ids(model, pixels)
                entry[kind] = {"crop": crop_name, "ids": ids, "smallest_margin": margin}
            golden["inputs"][name] = entry
            print(f"{name:28s} {img.mode:5s} {img.size}  margin {entry['pre']['smallest_margin']:.2e}")
    with open(os.path.join(out, "inputs.json"), "w") as f:
        json.dump(golden, f, indent=1)


if __name__ == "__main__":
    main()
