"""Describe the dataset from the index: `python -m stages.analyze`.

Writes reports/analysis.json (with the forgery kinds and their areas, on data with a meta.csv)
and the figures sizes, instances, forged_area and sample_grid
under reports/figures/.
"""
from pathlib import Path

from stages.common.analysis import (
    instance_components,
    pick_samples,
    plot_forged_area,
    plot_instances,
    plot_sample_grid,
    plot_sizes,
    read_kinds,
    summarize,
)
from stages.common.config import load_params
from stages.common.index import read_index
from stages.common.io import InputError, write_json
from stages.common.kinds import kind_distribution, read_meta

REPORT = Path("reports/analysis.json")
FIGURES = Path("reports/figures")


def main() -> None:
    params = load_params()
    root = Path(params.data.root)
    try:
        index = read_index(params.data.index)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(str(e)) from None
    try:
        components = instance_components(index, root)
        meta = read_meta(root)
        samples = pick_samples(index, read_kinds(meta))
        plot_sample_grid(samples, root, params.data.max_image_pixels, FIGURES / "sample_grid.png")
    except (InputError, FileNotFoundError) as e:
        raise SystemExit(f"{e}: the data changed since {params.data.index} was built; run build-index again") from None
    report = summarize(index, components)
    if meta is not None:
        report["forgery_kinds"] = kind_distribution(meta)
    write_json(REPORT, report)
    plot_sizes(index, FIGURES / "sizes.png")
    plot_instances(index, components, FIGURES / "instances.png")
    plot_forged_area(index, FIGURES / "forged_area.png")
    print(f"{len(index)} files, {len(components)} mask instances; wrote {REPORT} and 4 figures in {FIGURES}")


if __name__ == "__main__":
    main()
