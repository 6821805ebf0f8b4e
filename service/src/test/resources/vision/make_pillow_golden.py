"""Golden outputs of Pillow's bicubic resize (the resampling CLIP's processor uses) for PillowBicubicTest.
Run with a Python that has Pillow: python3 make_pillow_golden.py > pillow-bicubic-golden.json"""
import json
import random
import PIL
from PIL import Image

random.seed(1234)
cases = []
# (in w, in h, out w, out h): downscale (antialiased, widened support), upscale, one axis unchanged, odd factors
for (w, h, ow, oh) in [(50, 37, 20, 14), (9, 13, 20, 28), (64, 48, 64, 20), (31, 17, 47, 11), (96, 72, 24, 18)]:
    px = [random.randrange(256) for _ in range(w * h * 3)]
    im = Image.frombytes("RGB", (w, h), bytes(px))
    out = im.resize((ow, oh), resample=Image.BICUBIC, reducing_gap=None)
    cases.append({"width": w, "height": h, "out_width": ow, "out_height": oh, "pixels": px, "expected": list(out.tobytes())})
print(json.dumps({"pillow_version": PIL.__version__, "cases": cases}))
