"""Write the built-in synthetic dataset: `python -m stages.synthesize`.

Figures, forged twins, masks and a scored test set in the competition layout under SYNTH_ROOT,
all from `synth.*` in params.yaml. The folder is replaced as a whole, so no stale file survives.
"""
from pathlib import Path

import pandas as pd

from stages.common.config import ParamsError, load_params
from stages.common.synth import ForgeryError, generate_dataset

SYNTH_ROOT = Path("data/synthetic")


def main() -> None:
    params = load_params()
    try:
        summary = generate_dataset(params.synth, SYNTH_ROOT)
    except (ParamsError, ForgeryError, OSError) as e:     # OSError: a file could not be written
        raise SystemExit(f"synthesize: {e}") from None
    meta = summary.meta
    print(pd.crosstab([meta["split"], meta["kind"]], meta["label"], margins=True, margins_name="total").to_string())
    print(f"wrote {len(meta)} images to {summary.root} ({summary.size_bytes / 1e6:.1f} MB) "
          f"in {summary.seconds:.1f} s")


if __name__ == "__main__":
    main()
