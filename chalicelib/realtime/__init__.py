"""Real-time updates: events from the table's change stream, fanned out to WebSocket clients.

- `events`: a stream record in, the events it stands for out (pure);
- `fanout.Fanout`: the stream handler's work: events to the connections that subscribed;
- `socket.Sockets`: the WebSocket API's connect, message and disconnect;
- `replay`: what changed since a time, from the run history and the audit trail.

The protocol is in docs/realtime.md.
"""
