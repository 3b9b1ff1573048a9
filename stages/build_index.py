"""Index every file under the data root, with a status and a reason: `python -m stages.build_index`."""
import os
from pathlib import Path

from stages.common.config import load_params
from stages.common.index import build_index, format_status_counts, no_usable_row_message, usable_rows
from stages.common.io import write_csv

# Decoding every image dominates the stage and is independent per file.
WORKERS = min(os.cpu_count() or 1, 8)


def main() -> None:
    params = load_params()
    root, index_path = Path(params.data.root), Path(params.data.index)
    try:
        index = build_index(root, params.data.max_image_pixels, WORKERS)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    write_csv(index_path, index)
    print(f"{len(index)} files under {root}, by status:\n{format_status_counts(index)}")
    print(f"wrote {index_path}")
    if usable_rows(index).empty:
        raise SystemExit(no_usable_row_message(index, root, index_path))


if __name__ == "__main__":
    main()
