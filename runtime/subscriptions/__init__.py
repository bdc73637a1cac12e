"""Subscriptions: Prisma's `graphql-ws` websocket API, fed by the mutations' own transactions.

- `events`: what a mutation publishes (PostgreSQL NOTIFY inside its transaction, so an event
  leaves only with its COMMIT) and how a listener reads it back.
- `query`: a subscription document checked against the service's schema, its filters evaluated
  per event, and the payload it answers.
- `hub`: one LISTEN connection per process and database, the subscriptions of the process, and
  the fan-out of each event to them.
- `session`: one websocket connection (the `graphql-ws` protocol of subscriptions-transport-ws).
"""
