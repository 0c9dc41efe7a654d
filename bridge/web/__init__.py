"""Browsers and scripts: the Socket.IO adapter, its fan-out and intake, and the HTTP routes."""
