"""Adapters around the hub: each one speaks one transport."""
