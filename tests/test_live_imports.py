"""The live path imports only what it runs: no plotting, statistics or data-frame stack, and
no torchvision (with torch._dynamo, sympy and triton, 200 MB) unless the video model runs;
without a GPU it keeps none of torch's CUDA code resident."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

HEAVY = ("matplotlib", "scipy", "sklearn", "pandas")
VIDEO_MODEL_ONLY = ("torchvision", "torch._dynamo", "sympy", "triton")

RECOGNISE = """
import io, json, sys
from recognizer.headless import run_headless

out, err = io.StringIO(), io.StringIO()
code = run_headless(sys.argv[1], sys.argv[2], "landmark_cnn", out=out, err=err)
loaded = sorted(m for m in %r if m in sys.modules)
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt                 # the real one, once asked for
plt.figure()
print(json.dumps({"code": code, "lines": out.getvalue().splitlines(), "err": err.getvalue(),
                  "loaded": loaded, "pyplot": plt.__file__}))
""" % (HEAVY + VIDEO_MODEL_ONLY,)


def test_recognising_a_file_loads_no_training_only_stack(word_models, grid_dir):
    _, _, models = word_models
    done = subprocess.run(
        [sys.executable, "-c", RECOGNISE, str(grid_dir / "video" / "bbaf2n.mp4"), str(models)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["code"] == 0 and result["lines"], result["err"]
    assert result["loaded"] == [], f"the live path imported {result['loaded']}"
    assert result["pyplot"].endswith("pyplot.py")


WINDOW = """
import os, sys, tempfile
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtWidgets import QApplication
from recognizer.gui.window import MainWindow
from tests.conftest import no_camera
app = QApplication([])
tmp = tempfile.mkdtemp()
window = MainWindow(no_camera(), tmp + "/models", tmp + "/videos", tmp + "/history.csv")
print(sorted(m for m in %r if m in sys.modules))
""" % (("matplotlib", "scipy", "sklearn") + VIDEO_MODEL_ONLY,)


def test_the_window_loads_no_plotting_or_statistics_stack():
    """The window's enrolment (few-shot entries written as samples are kept) reads no reports,
    and its kinds (the Train tab lists every one) leave torchvision to the video model."""
    done = subprocess.run([sys.executable, "-c", WINDOW], cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "[]", done.stdout


GPU_CODE = """
import json, torch
from PySide6.QtWidgets import QApplication
from recognizer.gui.window import MainWindow
from tests.conftest import no_camera


def resident_cuda_mb():
    total, cuda = 0, False
    for line in open("/proc/self/smaps"):
        head = line.split()
        if "-" in head[0] and ":" not in head[0]:
            cuda = len(head) > 5 and ("/nvidia/" in head[5] or "libtorch_cuda" in head[5])
        elif cuda and head[0] == "Rss:":
            total += int(head[1]) / 1024
    return total


loaded = resident_cuda_mb()
app = QApplication([])
window = MainWindow(no_camera(), "{tmp}/models", "{tmp}/videos", "{tmp}/history.csv")
weights = torch.randn(4, 3, 3)
print(json.dumps({{"gpu": torch.cuda.is_available(), "loaded": loaded, "window": resident_cuda_mb(),
                  "conv": torch.nn.functional.conv1d(torch.ones(1, 3, 8), weights).sum().item(),
                  "expected": 6 * weights.sum().item()}}))
"""


def test_without_a_gpu_the_window_keeps_none_of_torchs_cuda_code_resident(tmp_path):
    """torch loads its CUDA libraries with itself (nearly 300 MB resident where the kernel maps
    files in large folios); the live worker releases them where no GPU can run them, and
    torch computes on as before."""
    done = subprocess.run([sys.executable, "-c", GPU_CODE.format(tmp=tmp_path)], cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT),
                               "QT_QPA_PLATFORM": "offscreen"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    if result["gpu"]:
        pytest.skip("a GPU runs torch's CUDA code here")
    assert result["window"] <= 30, result
    assert abs(result["conv"] - result["expected"]) < 1e-3


CHECK_REGISTRY = """
import json, sys
from training.registry import list_entries
names = [entry.name for entry in list_entries(sys.argv[1])]
print(json.dumps({"names": names, "loaded": sorted(m for m in %r if m in sys.modules)}))
""" % (VIDEO_MODEL_ONLY,)


def test_checking_a_patients_few_shot_entry_loads_no_compiler_stack(tmp_path):
    """The window lists the registry at start, checking each entry's weights against its model
    built on the meta device; a few-shot entry (every patient has one) must not pull in
    torch._dynamo and sympy for it."""
    from tests.conftest import SHIPPED_READER
    from training import registry
    from training.card import Card
    from training.kinds import get_kind

    reader = registry.read_card(SHIPPED_READER)
    args = {"reader": reader.arch_args, "num_classes": 3, "samples": 6}
    registry.write_entry(tmp_path, "few-shot-bed-4", get_kind("few_shot").build(args),
                         Card("few_shot", args, ("bin", "lay", "set"), reader.input))
    done = subprocess.run([sys.executable, "-c", CHECK_REGISTRY, str(tmp_path)], cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert "few-shot-bed-4" in result["names"] and result["loaded"] == [], result
