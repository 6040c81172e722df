"""A Prometheus exposition (`GET /metrics`) parsed for the tests."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> dict[Key, float]:
    """Every sample of an exposition, by (sample name, labels). Fails on a series given twice."""
    samples: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"series {key} exposed twice"
            samples[key] = sample.value
    return samples


def families(text: str) -> dict[str, str]:
    """The families of an exposition: name -> type."""
    return {family.name: family.type for family in text_string_to_metric_families(text)}


@dataclass
class Scrape:
    samples: dict[Key, float]
    text: str

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 for a series not exposed (yet): a labelled counter appears only
        once it has been incremented."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    def by(self, name: str, label: str) -> dict[str, float]:
        return {dict(labels)[label]: v for labels, v in self.series(name).items()}
