"""TensorInfo: a model input or output as every stage describes it."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple  # ints; a str for a dynamic dimension
    dtype: str

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
