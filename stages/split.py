"""Grouped, stratified train/validation split of the usable index rows: `python -m stages.split`."""
from stages.common.config import load_params
from stages.common.index import read_index, usable_rows
from stages.common.splitting import fold_summary, make_folds, write_folds


def main() -> None:
    params = load_params()
    try:
        rows = usable_rows(read_index(params.data.index))
        folds = make_folds(rows, params.split.folds, params.split.val_fraction, params.split.seed)
    except (FileNotFoundError, ValueError) as e:  # no index, a malformed one, or too few cases (SplitError)
        raise SystemExit(str(e)) from None
    written = write_folds(folds, params.data.splits_dir)
    print(fold_summary(folds))
    print(f"wrote {len(written)} files under {params.data.splits_dir}; training uses fold 0")


if __name__ == "__main__":
    main()
