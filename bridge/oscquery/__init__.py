"""OSCQuery: the namespace tree, its HTTP and WebSocket server, and the adapter."""
