"""The benchmark: declared grids of cells (method x dataset x split x setting x seed) run into a
results store (:mod:`.store`), resumable; tables and charts from the store (:mod:`.report`)."""
from .runner import Cell, expand_grid, load_grid, run_benchmark
from .store import ResultsStore

__all__ = ["Cell", "ResultsStore", "expand_grid", "load_grid", "run_benchmark"]
