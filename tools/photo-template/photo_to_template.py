#!/usr/bin/env python3
"""Turn one face photo into a Vigil JSON template: dlib's HOG face detector,
its 5-point alignment and its ResNet 128-d descriptor, behind a quality gate
that refuses photos likely to give a wrong or weak template."""

import argparse
import importlib.util
import json
import math
import os
import re
import sys
import tempfile
import warnings

try:
    import dlib
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError
except ImportError as e:
    sys.exit(f"photo_to_template: missing dependency {e.name}: pip install -r requirements.txt")

PROG = "photo_to_template"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_UNREADABLE = 0, 1, 2, 3, 4

ID_PATTERN = re.compile(r"[a-z0-9._-]{1,64}\Z")  # the policy's rule for extractor ids
MAX_SUBJECT_BYTES = 256  # `vigil calibrate` limit
MIN_SIDE_PX = 64  # no smaller image can hold a face that passes the size gate
UPSAMPLE_MAX_PIXELS = 2_000_000  # up to this size the detector upsamples once
CHIP_SIZE, CHIP_PADDING = 150, 0.25  # the crop compute_face_descriptor aligns to
CHIP_FACE = slice(25, 125)  # that crop's central 100 px: the face without its padding
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma
SHARPNESS_CONTRAST = 50.0  # the face's grey levels are scaled to this std before the Laplacian
GOOD_EYE_PX = 60.0  # quality 100 for size: an ISO/IEC 19794-5 token face image's eye distance
GOOD_SHARPNESS = 200.0  # quality 100 for sharpness
GOOD_EXPOSURE_MARGIN = 40.0  # quality 100 for exposure: this far inside both brightness limits


class Refused(Exception):
    """The photo cannot give a trustworthy template (exit 3)."""


class Unreadable(Exception):
    """The input is not an image this tool reads (exit 4)."""


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: usage error: {message} (see --help)\n")


def parse_args(argv):
    p = OneLineParser(
        prog=PROG,
        description="Make a Vigil face template (JSON) from one photo of one person.",
        epilog="Exit codes: 0 written, 1 output not written, 2 usage error, "
        "3 refused (no face, several faces, quality gate), 4 unreadable input.",
    )
    p.add_argument("photo", help="JPEG or PNG photo showing exactly one frontal face")
    p.add_argument("--out", required=True, help="template file to write, or - for standard output")
    p.add_argument("--extractor", metavar="ID",
                   help="the extractor's id in the federation's policy, e.g. dlib-resnet-v1-128")
    p.add_argument("--labelled", metavar="SUBJECT",
                   help="append a calibration line {subject, vector, quality} to --out instead")
    p.add_argument("--min-eye-distance", type=float, default=25.0, metavar="PX",
                   help="minimum distance between the eye centres in pixels (default 25)")
    p.add_argument("--min-sharpness", type=float, default=40.0, metavar="N",
                   help="minimum contrast-normalised variance of the Laplacian of the face (default 40)")
    p.add_argument("--min-brightness", type=float, default=40.0, metavar="N",
                   help="minimum mean grey level of the face, 0-255 (default 40)")
    p.add_argument("--max-brightness", type=float, default=225.0, metavar="N",
                   help="maximum mean grey level of the face, 0-255 (default 225)")
    p.add_argument("--min-detection-score", type=float, default=0.3, metavar="S",
                   help="detector score from which a detection counts as a face (default 0.3)")
    p.add_argument("--max-megapixels", type=float, default=40.0, metavar="MP",
                   help="largest image decoded, in megapixels (default 40)")
    a = p.parse_args(argv)
    if a.labelled is None and a.extractor is None:
        p.error("--extractor is required (unless --labelled)")
    if a.extractor is not None and not ID_PATTERN.match(a.extractor):
        p.error(f"--extractor {a.extractor!r}: ids are 1-64 characters of a-z, 0-9, '.', '_' and '-'")
    if a.labelled is not None and not 1 <= len(a.labelled.encode()) <= MAX_SUBJECT_BYTES:
        p.error(f"--labelled: the subject must be 1-{MAX_SUBJECT_BYTES} bytes")
    if not 0 <= a.min_brightness < a.max_brightness <= 255:
        p.error("need 0 <= --min-brightness < --max-brightness <= 255")
    if a.min_eye_distance < 0 or a.min_sharpness < 0 or a.max_megapixels <= 0:
        p.error("--min-eye-distance and --min-sharpness must be >= 0, --max-megapixels > 0")
    return a


def load_image(path, max_megapixels):
    """The photo as an upright RGB uint8 array (EXIF orientation applied)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path, formats=["JPEG", "PNG"])
        with img:
            megapixels = img.width * img.height / 1e6
            if megapixels > max_megapixels:
                raise Unreadable(f"{path} is {img.width}x{img.height} px ({megapixels:.1f} megapixels), "
                                 f"the limit is {max_megapixels:g} (--max-megapixels)")
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except Unreadable:
        raise
    except Image.DecompressionBombError:
        raise Unreadable(f"{path} is over {max_megapixels:g} megapixels (--max-megapixels)") from None
    except UnidentifiedImageError:
        raise Unreadable(f"cannot read {path}: not a JPEG or PNG image") from None
    except Exception as e:  # Pillow's decoders raise OSError, ValueError, SyntaxError and others
        raise Unreadable(f"cannot read {path}: {e}") from None
    if min(rgb.size) < MIN_SIDE_PX:
        raise Refused(f"image is {rgb.width}x{rgb.height} px, the smallest accepted is {MIN_SIDE_PX} px a side")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def model_path(name):
    """A model file shipped by face_recognition_models, found without importing
    it (its __init__ needs setuptools' deprecated pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise RuntimeError("missing dependency face_recognition_models: pip install -r requirements.txt")
    return os.path.join(os.path.dirname(spec.origin), "models", name)


def load_models():
    """dlib's HOG detector, 5-point landmark model and ResNet descriptor."""
    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(model_path("shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(model_path("dlib_face_recognition_resnet_model_v1.dat")),
    )


def find_face(rgb, detector, min_score):
    """The one face in the photo, or Refused; returns (box, notes)."""
    upsample = 1 if rgb.shape[0] * rgb.shape[1] <= UPSAMPLE_MAX_PIXELS else 0
    boxes, scores, _ = detector.run(rgb, upsample, min(min_score, 0.0))
    found = [(s, b) for b, s in zip(boxes, scores)]
    faces = sorted((f for f in found if f[0] >= min_score), key=lambda f: -f[0])
    weak = [s for s, _ in found if s < min_score]
    if not faces:
        best = f" (best detection score {max(weak):.2f}, below {min_score:g}, --min-detection-score)" if weak else ""
        raise Refused(f"no face found{best}; the detector finds frontal faces about 40 px wide or more "
                      f"(80 px in photos over {UPSAMPLE_MAX_PIXELS // 1_000_000} megapixels)")
    if len(faces) > 1:
        listed = ", ".join(f"{b.width()} px wide at x={b.left()} y={b.top()} scoring {s:.2f}" for s, b in faces)
        raise Refused(f"{len(faces)} faces found ({listed}); crop the photo to the one person's face")
    notes = []
    if weak:
        notes.append(f"ignored {len(weak)} weak detection(s) scoring {max(weak):.2f} or less "
                     f"(below {min_score:g}); check the photo shows one person only")
    return faces[0][1], notes


def eye_distance(shape):
    """Distance between the eye centres of a 5-point shape (points 0-1 and 2-3
    are the corners of each eye, point 4 the base of the nose)."""
    p = np.array([(pt.x, pt.y) for pt in shape.parts()], dtype=np.float64)
    return float(np.linalg.norm(p[0:2].mean(axis=0) - p[2:4].mean(axis=0)))


def sharpness(grey):
    """Variance of the 4-neighbour Laplacian after scaling the grey levels to a
    standard deviation of SHARPNESS_CONTRAST, so that dim faces are not taken for blurred."""
    std = grey.std()
    if std < 1.0:
        return 0.0
    g = (grey - grey.mean()) * (SHARPNESS_CONTRAST / std)
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def measure(rgb, shape):
    """The gate's measures: eye distance in the photo; sharpness and brightness
    of the aligned face crop the descriptor network is given."""
    chip = dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    grey = (chip.astype(np.float64) @ np.array(GREY_WEIGHTS))[CHIP_FACE, CHIP_FACE]
    return {"eye_px": eye_distance(shape), "sharpness": sharpness(grey), "brightness": float(grey.mean())}


def gate(m, a):
    """Refused naming every measure outside its limit."""
    failed = []
    if m["eye_px"] < a.min_eye_distance:
        failed.append(f"face too small: eyes {m['eye_px']:.1f} px apart, "
                      f"the minimum is {a.min_eye_distance:g} (--min-eye-distance)")
    if m["brightness"] < a.min_brightness:
        failed.append(f"too dark: mean brightness {m['brightness']:.1f}, "
                      f"the minimum is {a.min_brightness:g} (--min-brightness)")
    if m["brightness"] > a.max_brightness:
        failed.append(f"too bright: mean brightness {m['brightness']:.1f}, "
                      f"the maximum is {a.max_brightness:g} (--max-brightness)")
    if m["sharpness"] < a.min_sharpness:
        failed.append(f"blurred: sharpness {m['sharpness']:.1f}, "
                      f"the minimum is {a.min_sharpness:g} (--min-sharpness)")
    if failed:
        raise Refused("; ".join(failed))


def ramp(x, lo, hi):
    """0 at lo, 1 at hi and above, linear between (1 if hi <= lo)."""
    return 1.0 if hi <= lo else min(1.0, max(0.0, (x - lo) / (hi - lo)))


def quality(m, a):
    """0-100: the weakest of size, sharpness (log scale) and exposure, each
    0 at its refusal limit and 100 at a comfortably good value."""
    size = ramp(m["eye_px"], a.min_eye_distance, GOOD_EYE_PX)
    sharp = ramp(math.log1p(m["sharpness"]), math.log1p(a.min_sharpness), math.log1p(GOOD_SHARPNESS))
    margin = min(m["brightness"] - a.min_brightness, a.max_brightness - m["brightness"])
    exposure = ramp(margin, 0.0, min(GOOD_EXPOSURE_MARGIN, (a.max_brightness - a.min_brightness) / 2))
    return round(100 * min(size, sharp, exposure))


def descriptor(rgb, shape, encoder):
    """The 128-d descriptor as finite floats, or Refused."""
    v = [float(x) for x in encoder.compute_face_descriptor(rgb, shape)]
    if len(v) != 128 or not all(math.isfinite(x) for x in v) or not any(v):
        raise Refused("the model gave no usable descriptor (wrong length, NaN, Infinity or all zeros)")
    return v


def write_atomic(path, text):
    """Writes text to path through a temporary file (mode 0600) renamed over it;
    follows symbolic links, and writes a device or pipe (/dev/null) in place."""
    path = os.path.realpath(path)
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".photo-template-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def append_line(path, line):
    """Appends one line in a single write, after a newline if the file lacks its last one."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                line = "\n" + line
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def output(a, q, vector):
    """Writes the template file, or appends the labelled line; returns what was done."""
    if a.labelled is not None:
        record = {"subject": a.labelled, "vector": vector, "quality": q}
    else:
        record = {"modality": "face", "extractor": a.extractor, "quality": q, "vector": vector}
    text = json.dumps(record, allow_nan=False) + "\n"
    if a.out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return f"wrote the {'template' if a.labelled is None else 'labelled line'} to standard output"
    if a.labelled is not None:
        append_line(a.out, text)
        return f"appended subject {a.labelled!r} to {a.out}"
    write_atomic(a.out, text)
    return f"wrote {a.out}"


def say(message):
    print(f"{PROG}: {message}", file=sys.stderr)


def main(argv=None):
    a = parse_args(argv)
    try:
        rgb = load_image(a.photo, a.max_megapixels)
        detector, predictor, encoder = load_models()
        box, notes = find_face(rgb, detector, a.min_detection_score)
        shape = predictor(rgb, box)
        m = measure(rgb, shape)
        gate(m, a)
        q = quality(m, a)
        done = output(a, q, descriptor(rgb, shape, encoder))
    except Refused as e:
        say(f"refused {a.photo}: {e}")
        return EXIT_REFUSED
    except Unreadable as e:
        say(str(e))
        return EXIT_UNREADABLE
    except OSError as e:  # images are read inside load_image: this is the output
        say(f"cannot write {a.out}: {e.strerror or e}")
        return EXIT_FAILED
    except RuntimeError as e:  # a model file missing or damaged
        say(f"failed: {e}")
        return EXIT_FAILED
    for note in notes:
        say(f"note: {note}")
    say(f"{done} (quality {q}; eyes {m['eye_px']:.1f} px apart, sharpness {m['sharpness']:.0f}, "
        f"brightness {m['brightness']:.0f})")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
