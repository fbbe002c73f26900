"""The pipeline: its factory, its steps and the rules they share (batching, backpressure,
commits)."""
