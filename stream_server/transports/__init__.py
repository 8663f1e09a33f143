"""The edges where bytes meet the network: the WebSocket stream and the health endpoint."""
