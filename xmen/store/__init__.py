"""The on-disk model: where every file of a set lives, how state is written and read, and what it means."""
