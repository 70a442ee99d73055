"""The options every section reads, fixed for the whole run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Config:
    threads: int        # threads for every library
    quick: bool         # tiny sizes, one sample: a CI smoke run
    repeat: int         # timing samples per measurement
    stat: str           # "best" or "median" of the samples
    min_sample: float   # seconds a sample lasts at least (a fast call is looped)
    pause: float        # seconds between samples of different functions

    def rng(self) -> np.random.Generator:
        """A section's own random data: the same whichever sections run before it."""
        return np.random.default_rng(0)
