from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stages import split as split_stage
from stages.common.index import INDEX_COLUMNS, build_index, read_index
from stages.common.io import write_csv
from stages.common.splitting import SplitError, group_rows, make_folds, write_folds
from messy_data import make_competition_root

REPO = Path(__file__).resolve().parents[1]


def index_rows(n_cases: int, forged_every: int = 2, supplemental: int = 0, seed: int = 0) -> pd.DataFrame:
    """Usable index rows: every case authentic, every `forged_every`-th with a forged twin,
    plus `supplemental` forged-only cases."""
    rows = []
    for i in range(n_cases):
        case_id = f"{1000 + i}"
        rows.append(row(case_id, "train_authentic", "authentic", f"a{i}"))
        if i % forged_every == 0:
            rows.append(row(case_id, "train_forged", "forged", f"f{i}"))
    for i in range(supplemental):
        rows.append(row(f"s{i}", "supplemental", "forged", f"s{i}"))
    frame = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def row(case_id: str, source: str, label: str, sha1: str) -> dict:
    folder = {"train_authentic": "train_images/authentic", "train_forged": "train_images/forged"}.get(source, "supplemental_images")
    mask = "" if label == "authentic" else f"masks/{case_id}.npy"
    return dict(case_id=case_id, source=source, label=label, image_path=f"{folder}/{case_id}.png", mask_path=mask,
                width=64, height=64, mode="RGB", n_instances=int(label == "forged"), forged_fraction=0.01,
                sha1=sha1, status="ok", reason="")


def assert_disjoint(train: pd.DataFrame, val: pd.DataFrame) -> None:
    assert not set(train.case_id) & set(val.case_id)
    assert not set(train.sha1) & set(val.sha1)


def test_holdout_keeps_twins_together_and_stratifies():
    rows = index_rows(200, forged_every=2, supplemental=40)
    (fold,) = make_folds(rows, folds=1, val_fraction=0.2, seed=0)
    assert_disjoint(fold.train, fold.val)
    assert len(fold.train) + len(fold.val) == len(rows)
    assert fold.val.case_id.nunique() == round(0.2 * 240)
    assert forged_case_share(fold.val) == pytest.approx(forged_case_share(rows), abs=0.03)
    assert (fold.val.source == "supplemental").sum() == pytest.approx(40 * 0.2, abs=1)
    twins = rows.groupby("case_id").size()
    assert fold.val.groupby("case_id").size().eq(twins[fold.val.case_id.unique()]).all()


def forged_case_share(rows: pd.DataFrame) -> float:
    return rows[rows.label == "forged"].case_id.nunique() / rows.case_id.nunique()


def test_kfold_puts_every_row_in_exactly_one_validation_fold():
    rows = index_rows(53, forged_every=3, supplemental=7)
    folds = make_folds(rows, folds=5, val_fraction=0.2, seed=1)
    assert len(folds) == 5
    seen = pd.concat([f.val for f in folds])
    assert sorted(seen.image_path) == sorted(rows.image_path)
    for fold in folds:
        assert_disjoint(fold.train, fold.val)
        assert len(fold.train) + len(fold.val) == len(rows)
    groups = [f.val.case_id.nunique() for f in folds]
    forged = [f.val[f.val.label == "forged"].case_id.nunique() for f in folds]
    assert max(groups) - min(groups) <= 1
    assert max(forged) - min(forged) <= 2


def test_identical_images_under_different_case_ids_stay_together():
    rows = index_rows(30)
    rows.loc[rows.case_id == "1007", "sha1"] = "same"
    rows.loc[rows.case_id == "1012", "sha1"] = "same"
    group = group_rows(rows)
    assert len(set(group[rows.case_id.isin(["1007", "1012"]).to_numpy()])) == 1
    for seed in range(10):
        (fold,) = make_folds(rows, folds=1, val_fraction=0.5, seed=seed)
        assert_disjoint(fold.train, fold.val)


def test_split_is_deterministic_and_ignores_row_order():
    rows = index_rows(60, supplemental=5)
    def val_images(frame: pd.DataFrame, seed: int) -> list[str]:
        return sorted(make_folds(frame, 1, 0.25, seed)[0].val.image_path)

    assert val_images(rows, 3) == val_images(rows.sample(frac=1.0, random_state=9), 3)
    assert val_images(rows, 3) != val_images(rows, 4)


def test_too_few_cases_is_a_clear_error():
    with pytest.raises(SplitError, match="only 1 case"):
        make_folds(index_rows(1), folds=1, val_fraction=0.2, seed=0)
    with pytest.raises(SplitError, match="5-fold validation needs at least 5"):
        make_folds(index_rows(4), folds=5, val_fraction=0.2, seed=0)
    with pytest.raises(SplitError, match="only 0 case"):
        make_folds(index_rows(0), folds=1, val_fraction=0.2, seed=0)


@pytest.mark.parametrize("folds, val_fraction", [(0, 0.2), (1, 0.0), (1, 1.0)])
def test_bad_split_params_are_named(folds, val_fraction):
    with pytest.raises(SplitError, match="split.folds|split.val_fraction"):
        make_folds(index_rows(10), folds=folds, val_fraction=val_fraction, seed=0)


def test_two_cases_still_give_both_sides():
    (fold,) = make_folds(index_rows(2), folds=1, val_fraction=0.2, seed=0)
    assert fold.train.case_id.nunique() == fold.val.case_id.nunique() == 1


@settings(max_examples=40, deadline=None)
@given(
    n_cases=st.integers(2, 40),
    forged_every=st.integers(1, 4),
    supplemental=st.integers(0, 6),
    folds=st.integers(1, 4),
    val_fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**16),
)
def test_no_leak_for_any_layout(n_cases, forged_every, supplemental, folds, val_fraction, seed):
    rows = index_rows(n_cases, forged_every, supplemental, seed)
    if n_cases + supplemental < max(folds, 2):
        with pytest.raises(SplitError):
            make_folds(rows, folds, val_fraction, seed)
        return
    result = make_folds(rows, folds, val_fraction, seed)
    for fold in result:
        assert_disjoint(fold.train, fold.val)
        assert len(fold.train) and len(fold.val)
        assert len(fold.train) + len(fold.val) == len(rows)


def test_write_folds_writes_fold_zero_on_top_and_clears_stale_folds(tmp_path):
    rows = index_rows(20)
    write_folds(make_folds(rows, 4, 0.2, 0), tmp_path)
    assert sorted(p.name for p in tmp_path.glob("fold_*")) == ["fold_0", "fold_1", "fold_2", "fold_3"]
    assert (tmp_path / "val.csv").read_bytes() == (tmp_path / "fold_0/val.csv").read_bytes()
    write_folds(make_folds(rows, 2, 0.2, 0), tmp_path)
    assert sorted(p.name for p in tmp_path.glob("fold_*")) == ["fold_0", "fold_1"]
    write_folds(make_folds(rows, 1, 0.2, 0), tmp_path)
    assert not list(tmp_path.glob("fold_*"))


def use_params(tmp_path: Path, monkeypatch, **split) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["index"] = str(tmp_path / "index.csv")
    params["data"]["splits_dir"] = str(tmp_path / "splits")
    params["split"].update(split)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "splits"


def test_stage_splits_a_real_layout_index(tmp_path, monkeypatch, capsys):
    make_competition_root(tmp_path / "data", n_cases=10)
    index = build_index(tmp_path / "data", 40_000_000)
    index.loc[0, "status"] = "unreadable"
    write_csv(tmp_path / "index.csv", index)
    splits = use_params(tmp_path, monkeypatch, folds=3)
    split_stage.main()
    train, val = read_index(splits / "train.csv"), read_index(splits / "val.csv")
    assert tuple(train.columns) == INDEX_COLUMNS
    assert len(train) + len(val) == len(index) - 1
    assert (train.status == "ok").all() and (val.status == "ok").all()
    assert_disjoint(train, val)
    assert val.case_id.str.fullmatch(r"\d+").all()  # case_ids stay strings
    for k in range(3):
        assert (splits / f"fold_{k}/train.csv").is_file()
    out = capsys.readouterr().out
    assert "fold 2: train" in out and "forged" in out


def test_stage_exits_on_too_few_cases_and_missing_index(tmp_path, monkeypatch):
    use_params(tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match="build-index"):
        split_stage.main()
    write_csv(tmp_path / "index.csv", index_rows(1))
    with pytest.raises(SystemExit, match="only 1 case"):
        split_stage.main()
