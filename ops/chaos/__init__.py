"""The chaos run: the whole system under a steady, numbered load while its parts fail in turn,
then a count of every sample (sent, acknowledged, stored, delivered live, lost, duplicated) and
the time each fault took to recover from. `python -m ops.chaos --help`."""
