"""What feeds the quotes topic and reads the others: tick files, replay, the simulator, tail."""
