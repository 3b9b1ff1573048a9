"""The HTML evidence report of a screening run (see writer.py for the folder it writes)."""
from .writer import Failure, FigureEntry, add_figure, write_report

__all__ = ["Failure", "FigureEntry", "add_figure", "write_report"]
