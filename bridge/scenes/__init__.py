"""Scenes: saved values, the fade engine, and their HTTP and Socket.IO surface."""

from bridge.scenes.engine import Recall, Scenes
from bridge.scenes.store import Scene, scene_file_for

__all__ = ["Recall", "Scene", "Scenes", "scene_file_for"]
