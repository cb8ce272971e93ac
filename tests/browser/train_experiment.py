"""A small training sweep for the report tests: per-epoch loss and accuracy, and a learning rate that diverges."""
import math

from xmen import Experiment


class Train(Experiment):
    def __init__(self):
        """Fits nothing, but its curves look like training: loss falls faster with a larger lr."""
        super().__init__()
        self.lr: float = 0.1  # @p Learning rate
        self.seed: int = 0  # @p Random seed
        self.epochs: int = 8  # @p Epochs

    def run(self):
        for epoch in range(self.epochs):
            loss = math.exp(-self.lr * 10 * epoch) + 0.02 * self.seed
            if self.lr >= 1.0 and epoch == 2:
                raise RuntimeError(f"loss diverged at epoch {epoch} <lr too large>")
            self.message({"loss": loss, "val_acc": 1.0 - loss / 2}, step=epoch)


if __name__ == "__main__":
    exp = Train()
    exp.main(exp.parse_args())
