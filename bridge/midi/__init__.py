"""MIDI: the codec (values <-> MIDI numbers), the ports, the adapter, bindings, learn and soft takeover."""
