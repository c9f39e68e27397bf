"""The worker's book: surfaces as arrays, the epochs that close them into snapshots, their
batched calibration, and the warm-start state each smile carries from one epoch to the next."""
