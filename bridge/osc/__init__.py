"""OSC over UDP: the codec (packets <-> values) and the adapter."""
