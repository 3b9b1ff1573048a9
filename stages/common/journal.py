"""Resumable screening: results are kept beside the output in chunks, each written atomically.

A run over a big folder writes its results, in the input's order, to `.<out name>.parts/`
beside the output: `run.json` (what the run is: detector, images, model, params) and one
`chunk-NNNNNN.jsonl` per `chunk_rows` results, each renamed into place whole. A run killed at
figure 9,000 leaves every whole chunk before it; `--resume` keeps those rows, predicts only the
rest, and the finished run writes the output and removes the folder. A resume with different
settings is refused rather than mixing two runs in one submission.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from .io import write_json, write_text
from .screening import ImageResult

MANIFEST = "run.json"


class ResumeError(ValueError):
    """The journal left by a killed run cannot be continued by this one."""


def journal_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.parts"


def open_journal(out: Path, fingerprint: dict, resume: bool) -> list[ImageResult]:
    """The results a killed run kept when resuming; otherwise start an empty journal."""
    folder = journal_dir(out)
    if resume and (folder / MANIFEST).is_file():
        kept = json.loads((folder / MANIFEST).read_text())
        if kept != fingerprint:
            changed = sorted(k for k in {*kept, *fingerprint} if kept.get(k) != fingerprint.get(k))
            raise ResumeError(f"{folder}: the interrupted run differs in {', '.join(changed)}; "
                              "run without --resume to start over")
        return [ImageResult.from_dict(json.loads(line))
                for chunk in sorted(folder.glob("chunk-*.jsonl")) for line in chunk.read_text().splitlines()]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    write_json(folder / MANIFEST, fingerprint)
    return []


def journaled(results: Iterable[ImageResult], out: Path, chunk_rows: int) -> Iterator[ImageResult]:
    """Pass `results` through, writing each whole chunk of `chunk_rows` to the journal."""
    folder = journal_dir(out)
    number = len(list(folder.glob("chunk-*.jsonl")))
    chunk: list[ImageResult] = []
    for result in results:
        chunk.append(result)
        if len(chunk) >= chunk_rows:
            write_chunk(folder, number, chunk)
            number, chunk = number + 1, []
        yield result
    if chunk:
        write_chunk(folder, number, chunk)


def write_chunk(folder: Path, number: int, results: list[ImageResult]) -> None:
    write_text(folder / f"chunk-{number:06d}.jsonl", "".join(json.dumps(r.to_dict()) + "\n" for r in results))


def close_journal(out: Path) -> None:
    shutil.rmtree(journal_dir(out), ignore_errors=True)
