"""Every card's headline metric re-measured on the whole test split, by a path written apart from
`kerasrv.evaluation` and `kerasrv.tasks`: the model's answers batch by batch, and the metric
counted here in plain numpy. A card whose number its weights do not give fails here.
(`make test-slow`: the forecasters' 10,000 test clips take a while.)"""

import numpy as np
import pytest

from kerasrv import data, zoo

HEADLINE = {
    "classification": "accuracy",
    "video_classification": "accuracy",
    "segmentation": "mean_iou",
    "video_segmentation": "mean_iou",
    "next_frame": "mse",
    "video_prediction": "mse",
}


class _Counts:
    """What the headline metrics are counted from, summed over batches."""

    def __init__(self, num_classes):
        self.right = self.seen = 0
        self.intersection = np.zeros(num_classes or 1, np.int64)
        self.union = np.zeros(num_classes or 1, np.int64)
        self.squared_error = 0.0
        self.frames = 0

    def add(self, task, y, p):
        if task.endswith("prediction") or task == "next_frame":
            error = (np.asarray(p, np.float64) - y) ** 2
            per_frame = error.reshape(error.shape[0] * error.shape[1], -1)
            # OpenSTL's MSE sums a frame's pixels; next-frame cards average them
            self.squared_error += float(
                per_frame.sum(1).sum() if task == "video_prediction" else per_frame.mean(1).sum()
            )
            self.frames += per_frame.shape[0]
            return
        predicted = np.asarray(p).argmax(-1)
        y = np.asarray(y)
        self.right += int((predicted == y).sum())
        self.seen += y.size
        for c in range(len(self.union)):
            truth, answer = y == c, predicted == c
            self.intersection[c] += int((truth & answer).sum())
            self.union[c] += int((truth | answer).sum())

    def metric(self, name):
        if name == "accuracy":
            return self.right / self.seen
        if name == "mean_iou":
            present = self.union > 0
            return float((self.intersection[present] / self.union[present]).mean())
        return self.squared_error / self.frames


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list_models())
def test_the_cards_headline_metric_is_what_its_weights_score_on_the_whole_test_split(
    name, tfds_dir
):
    card = zoo.info(name)
    metric = HEADLINE[card.task]
    model = zoo.load(name)
    counts = _Counts(card.num_classes)
    split = card.evaluation["split"]
    examples = 0
    for x, y in data.pipeline(card, split, 64, shuffle=False, data_dir=tfds_dir):
        counts.add(card.task, y.numpy(), model.predict_on_batch(x))
        examples += len(y)
    assert examples == card.evaluation["examples"]  # the whole split the card was measured on
    assert counts.metric(metric) == pytest.approx(card.metrics[metric], rel=1e-4, abs=1e-4)
