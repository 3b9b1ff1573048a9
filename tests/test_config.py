import copy

import pytest
import yaml

from stages.common.config import Params, ParamsError, load_params, params_from_dict

RAW = yaml.safe_load(open("params.yaml"))


def with_change(section, key, value=None, delete=False):
    raw = copy.deepcopy(RAW)
    if delete:
        del raw[section][key]
    else:
        raw[section][key] = value
    return raw


def test_repository_params_load_into_dataclasses():
    params = load_params()
    assert isinstance(params, Params)
    assert params.data.root == "data/synthetic"
    assert isinstance(params.train.lr, float) and isinstance(params.train.epochs, int)
    assert params.synth.instances[0] <= params.synth.instances[1]


def test_unknown_key_is_named():
    with pytest.raises(ParamsError, match=r"train: unknown key\(s\) learning_rate"):
        params_from_dict(with_change("train", "learning_rate", 0.1))


def test_missing_key_is_named():
    with pytest.raises(ParamsError, match=r"train: missing key\(s\) lr"):
        params_from_dict(with_change("train", "lr", delete=True))


def test_unknown_section_is_named():
    raw = copy.deepcopy(RAW)
    raw["trian"] = {}
    with pytest.raises(ParamsError, match="unknown key.*trian"):
        params_from_dict(raw)


@pytest.mark.parametrize("section, key, value", [
    ("train", "epochs", "ten"),
    ("train", "epochs", 2.5),
    ("train", "amp", 1),
    ("train", "lr", True),
    ("synth", "instances", [1, 2, 3]),
    ("synth", "kinds", ["blot"]),
    ("data", "root", 3),
])
def test_wrong_type_is_named(section, key, value):
    with pytest.raises(ParamsError, match=rf"{section}\.{key}"):
        params_from_dict(with_change(section, key, value))


def test_integers_are_accepted_where_floats_are_expected():
    params = params_from_dict(with_change("train", "lr", 1))
    assert params.train.lr == 1.0 and isinstance(params.train.lr, float)


def test_choice_out_of_range_is_named():
    with pytest.raises(ParamsError, match=r"infer.detector is 'sift'; expected one of maskrcnn, keypoint, fusion"):
        params_from_dict(with_change("infer", "detector", "sift"))


def test_missing_params_file_says_so(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("value", ["auto", 1, 3])
def test_threads_is_auto_or_a_count(value):
    assert params_from_dict(with_change("train", "threads", value)).train.threads == value


@pytest.mark.parametrize("value", [0, -2, "many", True, 1.5])
def test_other_threads_are_refused_with_the_key_named(value):
    with pytest.raises(ParamsError, match=r"train.threads"):
        params_from_dict(with_change("train", "threads", value))


def test_auto_threads_are_this_process_share_of_its_cores(monkeypatch):
    from stages.common.runtime import available_cores, resolve_threads

    assert resolve_threads("auto") == available_cores()
    assert resolve_threads(3) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(available_cores() * 2))  # torchrun: more processes than cores
    assert resolve_threads("auto") == 1
