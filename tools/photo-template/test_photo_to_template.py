"""Tests of photo_to_template.py, run as a user would (a subprocess), on
photos made at run time from scikit-image's public-domain samples."""

import io
import json
import math
import os
import stat
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from PIL import Image, ImageFilter
from skimage import data

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "photo_to_template.py")
EXTRACTOR = "dlib-resnet-v1-128"
SAME_PERSON = 0.6  # dlib's usual distance threshold for its 128-d descriptors


def run(photo, *args, out=None):
    """Runs the script; returns (exit code, stdout, stderr)."""
    cmd = [sys.executable, SCRIPT, photo, "--out", out or "-", *args]
    if "--labelled" not in args and "--extractor" not in args:
        cmd += ["--extractor", EXTRACTOR]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def checked_template(photo, out, *args):
    """The template written for a photo that must pass, checked for shape."""
    code, stdout, stderr = run(photo, *args, out=out)
    assert code == 0, f"exit {code}: {stderr}"
    with open(out, encoding="utf-8") as f:
        text = f.read()
    assert "NaN" not in text and "Infinity" not in text, text[:200]
    t = json.loads(text)
    assert list(t) == ["modality", "extractor", "quality", "vector"], list(t)
    assert t["modality"] == "face" and t["extractor"] == EXTRACTOR, t
    assert isinstance(t["quality"], int) and 0 <= t["quality"] <= 100, t["quality"]
    assert len(t["vector"]) == 128 and all(isinstance(x, float) and math.isfinite(x) for x in t["vector"])
    assert stdout == "" and str(t["vector"][0]) not in stderr, "the vector must never be logged"
    return t


class PhotoToTemplate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        astronaut = Image.fromarray(data.astronaut())  # NASA photo of Eileen Collins, 512x512
        w, h = astronaut.size
        small = astronaut.resize((int(w * 0.7), int(h * 0.7)), Image.LANCZOS)
        two = Image.new("RGB", (2 * w, h))
        two.paste(astronaut, (0, 0))
        two.paste(astronaut.transpose(Image.FLIP_LEFT_RIGHT), (w, 0))
        cls.photos = {
            "astronaut.png": astronaut,
            "moved.png": small.rotate(3, translate=(10, -6), resample=Image.BICUBIC, fillcolor=(128, 128, 128)),
            "mirrored.jpg": astronaut.transpose(Image.FLIP_LEFT_RIGHT),
            "cat.jpg": Image.fromarray(data.chelsea()),
            "coffee.jpg": Image.fromarray(data.coffee()),
            "blurred.png": astronaut.filter(ImageFilter.GaussianBlur(2)),
            "two.png": two,
            "far.png": astronaut.resize((int(w * 0.4), int(h * 0.4)), Image.LANCZOS),
            "dark.png": Image.fromarray((np.asarray(astronaut) * 0.15).astype(np.uint8)),
            "tiny.png": astronaut.resize((48, 48), Image.LANCZOS),
        }
        for name, img in cls.photos.items():
            img.save(cls.path(name))
        # Stored sideways, with the EXIF tag that says to turn it upright.
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
        astronaut.transpose(Image.ROTATE_90).save(cls.path("sideways.jpg"), exif=exif.tobytes(), quality=95)
        jpeg = io.BytesIO()
        astronaut.save(jpeg, "JPEG")
        with open(cls.path("truncated.jpg"), "wb") as f:
            f.write(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
        with open(cls.path("garbage.jpg"), "wb") as f:
            f.write(np.random.default_rng(1).bytes(5000))
        cls.reference = checked_template(cls.path("astronaut.png"), cls.path("astronaut.png.json"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def path(cls, name):
        return os.path.join(cls.tmp.name, name)

    def template(self, name, *args):
        return checked_template(self.path(name), self.path(name + ".json"), *args)

    def distance(self, t):
        return float(np.linalg.norm(np.array(t["vector"]) - np.array(self.reference["vector"])))

    def refused(self, name, expected, code=3, *args):
        out = self.path("refused-" + name + ".json")
        got, stdout, stderr = run(self.path(name), *args, out=out)
        self.assertEqual(got, code, stderr)
        self.assertIn(expected, stderr)
        self.assertEqual(len(stderr.strip().splitlines()), 1, stderr)
        self.assertEqual(stdout, "")
        self.assertFalse(os.path.exists(out))
        return stderr

    def test_astronaut_gives_a_template(self):
        self.assertGreater(self.reference["quality"], 0)
        self.assertGreater(float(np.linalg.norm(self.reference["vector"])), 0.5)

    def test_resized_rotated_and_shifted_is_the_same_person(self):
        self.assertLess(self.distance(self.template("moved.png")), SAME_PERSON)

    def test_mirrored_is_the_same_person(self):
        self.assertLess(self.distance(self.template("mirrored.jpg")), SAME_PERSON)

    def test_exif_orientation_is_applied(self):
        self.assertLess(self.distance(self.template("sideways.jpg")), SAME_PERSON)

    def test_stdout_and_no_temporary_file_left(self):
        code, stdout, stderr = run(self.path("astronaut.png"))
        self.assertEqual(code, 0, stderr)
        self.assertEqual(json.loads(stdout)["vector"], self.reference["vector"])
        self.assertEqual([n for n in os.listdir(self.tmp.name) if n.startswith(".photo-template-")], [])

    def test_links_and_pipes_are_written_not_replaced(self):
        target, link, fifo = self.path("target.json"), self.path("link.json"), self.path("pipe.json")
        os.symlink(target, link)
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            for out in (link, fifo):
                code, _, stderr = run(self.path("astronaut.png"), out=out)
                self.assertEqual(code, 0, stderr)
            piped = os.read(reader, 1 << 16).decode()
        finally:
            os.close(reader)
        self.assertTrue(os.path.islink(link) and stat.S_ISFIFO(os.stat(fifo).st_mode))
        with open(target, encoding="utf-8") as f:
            self.assertEqual(json.load(f)["vector"], self.reference["vector"])
        self.assertEqual(json.loads(piped)["vector"], self.reference["vector"])

    def test_labelled_lines_are_appended(self):
        out = self.path("labelled.jsonl")
        for name, subject in [("astronaut.png", "collins"), ("mirrored.jpg", "collins")]:
            code, _, stderr = run(self.path(name), "--labelled", subject, out=out)
            self.assertEqual(code, 0, stderr)
        with open(out, encoding="utf-8") as f:
            text = f.read()
        self.assertTrue(text.endswith("\n"))
        lines = [json.loads(line) for line in text.splitlines()]
        self.assertEqual(len(lines), 2)
        for line in lines:
            self.assertEqual(sorted(line), ["quality", "subject", "vector"])
            self.assertEqual(line["subject"], "collins")
            self.assertEqual(len(line["vector"]), 128)
        self.assertEqual(lines[0]["vector"], self.reference["vector"])

    def test_cat_and_coffee_have_no_face(self):
        self.refused("cat.jpg", "no face")
        self.refused("coffee.jpg", "no face")

    def test_blurred_is_refused(self):
        self.refused("blurred.png", "blurred: sharpness")

    def test_two_faces_are_refused(self):
        self.refused("two.png", "2 faces found")

    def test_small_face_is_refused(self):
        self.refused("far.png", "face too small")

    def test_dark_is_refused(self):
        self.refused("dark.png", "too dark")

    def test_tiny_image_is_refused(self):
        self.refused("tiny.png", "48x48 px")

    def test_unreadable_inputs(self):
        self.refused("garbage.jpg", "not a JPEG or PNG", 4)
        self.refused("truncated.jpg", "cannot read", 4)
        self.refused("missing.png", "cannot read", 4)
        self.refused("astronaut.png", "megapixels", 4, "--max-megapixels", "0.1")

    def test_usage_errors(self):
        for args in (["--extractor", "Not An Id"], ["--labelled", ""], ["--min-brightness", "300"]):
            self.refused("astronaut.png", "usage error", 2, *args)
        no_extractor = [sys.executable, SCRIPT, self.path("astronaut.png"), "--out", "-"]
        p = subprocess.run(no_extractor, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--extractor is required", p.stderr)

if __name__ == "__main__":
    unittest.main()
