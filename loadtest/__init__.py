"""``loadtest``: drive many concurrent WebSocket chats (or hold many idle sockets) against the tutor, locally
or on a deployed Space, and report latency, throughput and errors."""
