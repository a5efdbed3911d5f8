"""One random example of a hypothesis strategy, drawn reproducibly, for tests that can afford a
single expensive run (one Spark job over a batch of cases).

`@settings(max_examples=1)` does not do that: hypothesis's first example is always the simplest
one its strategy can produce, so a list of 40 generated cases is 40 empty cases and the test
compares nothing. `sample` draws the first *random* example instead (the second of a
generate-only run), from a fixed seed, so CI runs the same data every time and a failure
reproduces. Draw a batch as one example per seed (`samples`): a list strategy of 40 cases
overruns hypothesis's buffer, so its random examples are discarded and only the simplest is left.
"""

from __future__ import annotations

from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

T = TypeVar("T")


def sample(strategy: st.SearchStrategy[T], at: int = 0) -> T:
    """The first random (not the simplest) example of `strategy` under seed `at`."""
    drawn: list[Any] = []

    @seed(at)
    @settings(max_examples=3, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def grab(value: Any) -> None:
        drawn.append(value)

    grab()
    assert len(drawn) >= 2, "hypothesis drew no random example (the strategy overran?)"
    return drawn[1]


def samples(strategy: st.SearchStrategy[T], n: int, at: int = 0) -> list[T]:
    """`n` random examples of `strategy`, one per seed (`at * 1000 + i`)."""
    return [sample(strategy, at * 1000 + i) for i in range(n)]
