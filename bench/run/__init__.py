"""One run's lifecycle: its frozen spec (run id), training, evaluation, and the results store it reads and writes."""
