import dataclasses

import pytest
import torch

from stages.common.config import load_params
from stages.common.model import build_model, save_checkpoint
from stages.common.synth import generate_dataset


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run tiny images: a second thread gains nothing, and on a busy machine it costs dearly."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained Mask R-CNN at a tiny input size, saved as predict loads it: enough to run the
    learned and fused detectors end to end, never to find anything."""
    params = dataclasses.replace(load_params().model, min_size=96, max_size=128)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, build_model(params, load_weights=False), params)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Eight synthetic test figures, half of them forged, with their solution.csv beside them."""
    synth = dataclasses.replace(load_params().synth, n_cases=2, n_test=8, min_side=160, max_side=224)
    root = tmp_path_factory.mktemp("corpus") / "synthetic"
    generate_dataset(synth, root)
    return root / "test_images"
