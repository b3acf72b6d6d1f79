"""A stand-in for the gate's verdict (classifier.gate.Assessment): the worker's real model
runs, and every result it returns carries the verdict a test chooses."""

from dataclasses import dataclass, field


@dataclass
class FakeAssessment:
    assessable: bool = True
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"assessable": self.assessable, "reasons": self.reasons, "scores": self.scores}


def gate_says(monkeypatch, assessment: FakeAssessment) -> None:
    """Predictor.predict runs as usual, then gives each result ``assessment``."""
    from classifier.predictor import Predictor

    real = Predictor.predict

    def predict(self, images, *args, **kwargs):
        results = real(self, images, *args, **kwargs)
        for result in results:
            result.assessment = assessment
        return results

    monkeypatch.setattr(Predictor, "predict", predict)
