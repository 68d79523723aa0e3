"""The cost model: a dated price table (``prices.toml``), GB-seconds per invocation, cost per record.

Lambda bills each invocation's duration, rounded up to the billing granularity,
times its memory in GB (1 GB = 1,024 MB), at a price per GB-second, plus a
price per request. Memory is chosen on a grid (min, max, step); CPU follows
memory (servebench.cgroups.lambda_cpus).
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

PRICES_FILE = Path(__file__).with_name("prices.toml")
DEFAULT_TABLE = "study-2019"


@dataclass(frozen=True)
class PriceTable:
    name: str
    provider: str
    date: str
    source: str
    price_per_gb_s: float
    price_per_request: float
    memory_min_mb: int
    memory_max_mb: int
    memory_step_mb: int
    billing_granularity_ms: int
    bills_init: bool = False

    def grid(self) -> list[int]:
        """Every memory setting a function may have, ascending. With a 64 MB step from 128 MB the
        grid is 128, 192, ... and the top (3,008) is included even when the step does not reach it."""
        values = list(range(self.memory_min_mb, self.memory_max_mb + 1, self.memory_step_mb))
        if values[-1] != self.memory_max_mb:
            values.append(self.memory_max_mb)
        return values

    def check_memory(self, memory_mb: int) -> None:
        if memory_mb not in self.grid():
            raise ValueError(f"{memory_mb} MB is not a memory setting of {self.name} "
                             f"({self.memory_min_mb}-{self.memory_max_mb} MB in {self.memory_step_mb} MB steps)")

    def billed_ms(self, duration_s: float) -> int:
        """Duration rounded up to the granularity (at least one unit)."""
        g = self.billing_granularity_ms
        return max(g, int(math.ceil(round(duration_s * 1000, 6) / g)) * g)

    def gb_s(self, memory_mb: int, duration_s: float) -> float:
        return memory_mb / 1024 * self.billed_ms(duration_s) / 1000

    def invocation_cost(self, memory_mb: int, duration_s: float) -> float:
        return self.gb_s(memory_mb, duration_s) * self.price_per_gb_s + self.price_per_request

    def recorded(self) -> dict:
        return asdict(self)


def load(name: str = DEFAULT_TABLE, path: Path | str = PRICES_FILE) -> PriceTable:
    tables = tomllib.loads(Path(path).read_text())
    if name not in tables:
        raise ValueError(f"no price table {name!r} in {path}: choose one of {', '.join(tables)}")
    return PriceTable(name=name, **tables[name])


def per_images(total_cost: float, images: int, per: int = 1000) -> float:
    """Cost per ``per`` images."""
    return total_cost / images * per if images else float("nan")
