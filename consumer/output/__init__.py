"""What the pipeline writes: wire records, verdict fields and the destinations' state."""
