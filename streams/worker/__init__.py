"""The worker: the faust app built from its settings, the quotes agent, the pipeline from raw
messages to published parameters, partition takeover, metrics, and how a worker starts."""
